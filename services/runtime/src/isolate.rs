//! Finding the items that fail a group. A store call over many items (an aggregator batch, a
//! site's quiet visits) fails whole when one item is poison; splitting the group and trying the
//! halves, again and again, leaves the poison alone, so everything beside it is applied and only
//! it is set aside. A failure that is not about the items (the store is down) stops the search at
//! once: the rest is reported untried, to be retried later, never split into thousands of calls.

use std::future::Future;
use std::ops::Range;

/// What became of one part of the group.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempted<R, E> {
    /// The call over this part succeeded.
    Applied(R),
    /// The call over this part failed: alone (one item) when the error was one to split on,
    /// else the part as it stood when a non-splittable error stopped the search.
    Failed(E),
    /// Not tried: the search stopped (a non-splittable error, or `max_calls` reached).
    Untried,
}

/// Calls `attempt` over `0..len`, then over the halves of each part that fails with an error
/// `splittable` accepts, until each failing part is one item. Makes at most `max_calls` calls
/// (a group of many poison items is finished by later retries, not by one long search). Returns
/// every part with its outcome, in order, covering `0..len` exactly once.
pub async fn isolate<R, E, F, Fut>(
    len: usize,
    max_calls: usize,
    mut attempt: F,
    splittable: impl Fn(&E) -> bool,
) -> Vec<(Range<usize>, Attempted<R, E>)>
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    let mut done = Vec::new();
    if len == 0 {
        return done;
    }
    // Parts still to try, the next one last.
    let mut pending = Vec::new();
    pending.push(0..len);
    let mut calls = 0;
    while let Some(part) = pending.pop() {
        if calls == max_calls {
            pending.push(part);
            break;
        }
        calls += 1;
        match attempt(part.clone()).await {
            Ok(result) => done.push((part, Attempted::Applied(result))),
            Err(error) if splittable(&error) && part.len() > 1 => {
                let middle = part.start + part.len() / 2;
                pending.push(middle..part.end);
                pending.push(part.start..middle);
            }
            Err(error) => {
                let stop = !splittable(&error);
                done.push((part, Attempted::Failed(error)));
                if stop {
                    break;
                }
            }
        }
    }
    done.extend(pending.into_iter().rev().map(|p| (p, Attempted::Untried)));
    done.sort_by_key(|(part, _)| part.start);
    done
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Fault {
        Poison(usize),
        Down,
    }

    /// A store over items 0..n that fails a call holding any poison item, or every call once
    /// `down_after` calls were made.
    async fn run(
        n: usize,
        poison: &[usize],
        down_after: Option<usize>,
        max_calls: usize,
    ) -> (
        Vec<(Range<usize>, Attempted<usize, Fault>)>,
        Vec<usize>,
        usize,
    ) {
        let applied = RefCell::new(Vec::new());
        let calls = RefCell::new(0);
        let parts = isolate(
            n,
            max_calls,
            |part: Range<usize>| {
                *calls.borrow_mut() += 1;
                let result = if down_after.is_some_and(|d| *calls.borrow() > d) {
                    Err(Fault::Down)
                } else if let Some(&p) = poison.iter().find(|p| part.contains(p)) {
                    Err(Fault::Poison(p))
                } else {
                    applied.borrow_mut().extend(part.clone());
                    Ok(part.len())
                };
                async move { result }
            },
            |fault| matches!(fault, Fault::Poison(_)),
        )
        .await;
        let calls = *calls.borrow();
        (parts, applied.into_inner(), calls)
    }

    fn covers_once(parts: &[(Range<usize>, Attempted<usize, Fault>)], n: usize) {
        let mut next = 0;
        for (part, _) in parts {
            assert_eq!(part.start, next, "{parts:?}");
            next = part.end;
        }
        assert_eq!(next, n);
    }

    #[tokio::test]
    async fn one_poison_item_is_left_alone_and_everything_else_applied() {
        let (parts, mut applied, calls) = run(4000, &[1234], None, 1000).await;
        covers_once(&parts, 4000);
        let failed: Vec<_> = parts
            .iter()
            .filter(|(_, a)| matches!(a, Attempted::Failed(_)))
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 1234..1235);
        applied.sort_unstable();
        assert_eq!(
            applied,
            (0..4000).filter(|&i| i != 1234).collect::<Vec<_>>()
        );
        assert!(calls <= 2 * 12 + 1, "{calls} calls for one poison in 4000");
    }

    #[tokio::test]
    async fn a_clean_group_is_one_call() {
        let (parts, applied, calls) = run(10, &[], None, 100).await;
        assert_eq!((calls, applied.len()), (1, 10));
        assert_eq!(parts, vec![(0..10, Attempted::Applied(10))]);
    }

    #[tokio::test]
    async fn an_outage_stops_the_search_and_leaves_the_rest_untried() {
        // Calls: 0..100 fails on the poison, 0..50 applies, 50..100 fails on the poison, then
        // the store is down for 50..75; 75..100 is never tried.
        let (parts, applied, calls) = run(100, &[70], Some(3), 1000).await;
        covers_once(&parts, 100);
        assert_eq!(calls, 4, "no splitting once the store is down");
        assert!(
            parts
                .iter()
                .any(|(_, a)| *a == Attempted::Failed(Fault::Down))
        );
        assert!(parts.iter().any(|(_, a)| *a == Attempted::Untried));
        assert!(
            !parts
                .iter()
                .any(|(p, a)| matches!(a, Attempted::Failed(Fault::Poison(_))) && p.len() > 1)
        );
        assert_eq!(applied.len(), 50, "the clean half before the outage");
    }

    #[tokio::test]
    async fn many_poison_items_cost_at_most_max_calls() {
        let poison: Vec<usize> = (0..64).map(|i| i * 3).collect();
        let (parts, _, calls) = run(200, &poison, None, 40).await;
        covers_once(&parts, 200);
        assert_eq!(calls, 40);
        assert!(parts.iter().any(|(_, a)| *a == Attempted::Untried));
        for (part, outcome) in &parts {
            if let Attempted::Failed(Fault::Poison(p)) = outcome {
                assert_eq!(*part, *p..*p + 1);
            }
        }
    }

    #[tokio::test]
    async fn every_poison_item_is_found_given_enough_calls() {
        let poison = [0, 1, 99];
        let (parts, applied, _) = run(100, &poison, None, 10_000).await;
        covers_once(&parts, 100);
        let failed: Vec<usize> = parts
            .iter()
            .filter(|(_, a)| matches!(a, Attempted::Failed(_)))
            .map(|(p, _)| p.start)
            .collect();
        assert_eq!(failed, poison);
        assert_eq!(applied.len(), 97);
    }
}
