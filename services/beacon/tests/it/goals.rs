//! `beacon goal add|list|delete` against a real PostgreSQL: what is kept, what each command
//! refuses (hostile values included, each naming its flag), and that a deleted site's goals go
//! with it.

use crate::common::{Namespace, beacon_fails, beacon_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_are_added_listed_and_deleted_and_bad_ones_refused_by_flag() {
    let ns = Namespace::new("goals_cli");
    let env = ns.env();
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["site", "add", "goals.test"]);
    let site = ["--site", "goals.test"];
    let with = |args: &[&'static str]| [&["goal"][..], args, &site[..]].concat();

    beacon_ok(&env, &with(&["add", "--event", "Signup"]));
    beacon_ok(&env, &with(&["add", "--page", "/blog/*"]));
    let again = beacon_ok(&env, &with(&["add", "--event", "Signup"]));
    assert!(again.contains("already"), "{again}");
    // The domain is normalised as everywhere else.
    beacon_ok(
        &env,
        &[
            "goal",
            "add",
            "--site",
            "GOALS.test",
            "--event",
            "File Download",
        ],
    );
    let listed = beacon_ok(&env, &with(&["list"]));
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["File Download", "Signup", "Visit /blog/*"]
    );
    let json: serde_json::Value =
        serde_json::from_str(&beacon_ok(&env, &with(&["list", "--json"]))).expect("JSON");
    assert_eq!(json[2]["page"], "/blog/*");
    assert_eq!(json[2]["goal"], "Visit /blog/*");

    // Refused, naming the flag: a path without `/`, an empty name, control characters, 100
    // kB, both kinds at once, neither, an unknown site.
    // (100 kB: one argument of a command line holds at most 128 KiB; NUL cannot be in one.)
    let long = "x".repeat(100_000);
    for (args, says) in [
        (vec!["add", "--page", "blog"], "--page"),
        (vec!["add", "--event", " "], "--event"),
        (vec!["add", "--event", "a\u{1}b"], "--event"),
        (vec!["add", "--event", "a\tb"], "--event"),
        (vec!["add", "--event", long.as_str()], "--event"),
        (vec!["add", "--event", "A", "--page", "/a"], "--event"),
        (vec!["add"], "--event"),
    ] {
        let mut all = vec!["goal"];
        all.extend(args.iter().copied());
        all.extend(site);
        let error = beacon_fails(&env, &all);
        assert!(
            error.contains(says),
            "{args:?}: {}",
            &error[..error.len().min(300)]
        );
    }
    let error = beacon_fails(
        &env,
        &["goal", "add", "--site", "nowhere.test", "--event", "A"],
    );
    assert!(error.contains("no such site"), "{error}");
    assert_eq!(beacon_ok(&env, &with(&["list"])).lines().count(), 3);

    beacon_ok(&env, &with(&["delete", "--event", "Signup"]));
    let error = beacon_fails(&env, &with(&["delete", "--event", "Signup"]));
    assert!(error.contains("no goal Signup"), "{error}");
    assert_eq!(
        beacon_ok(&env, &with(&["list"]))
            .lines()
            .collect::<Vec<_>>(),
        ["File Download", "Visit /blog/*"]
    );

    // A site holds at most 100 goals: filled up to the bound, the next one is refused and not
    // kept, an existing one is still "already there", and deleting one makes room.
    let pool = ns.pg().await;
    pool.get()
        .await
        .expect("client")
        .execute(
            "INSERT INTO goals (site_id, kind, value)
             SELECT s.id, 'event', 'Filler ' || n FROM sites s, generate_series(1, 97) n
             WHERE s.domain = 'goals.test'",
            &[],
        )
        .await
        .expect("fill");
    beacon_ok(&env, &with(&["add", "--event", "The hundredth"]));
    let error = beacon_fails(&env, &with(&["add", "--event", "One too many"]));
    assert!(
        error.contains("100 goals") && error.contains("--site"),
        "{error}"
    );
    let again = beacon_ok(&env, &with(&["add", "--event", "The hundredth"]));
    assert!(again.contains("already"), "{again}");
    let listed = beacon_ok(&env, &with(&["list"]));
    assert_eq!(listed.lines().count(), 100, "{listed}");
    assert!(!listed.contains("One too many"), "{listed}");
    beacon_ok(&env, &with(&["delete", "--event", "Filler 1"]));
    beacon_ok(&env, &with(&["add", "--event", "One too many"]));

    // A deleted site takes its goals with it: added again, it has none.
    beacon_ok(&env, &["site", "delete", "goals.test", "--yes"]);
    beacon_ok(&env, &["site", "add", "goals.test"]);
    assert_eq!(beacon_ok(&env, &with(&["list"])), "");
}
