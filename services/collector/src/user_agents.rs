//! Recently seen user agents and what [`classify`] made of them. Real traffic repeats a few
//! thousand user-agent strings; classifying one runs woothee's rules and the bot patterns (the
//! largest single cost of accepting an event), a cache hit is one hash lookup.

use beacon_pipeline::user_agent::{BotKind, UserAgentInfo, classify};
use quick_cache::sync::Cache;

/// Distinct user agents remembered (quick_cache evicts the least useful beyond this).
const CAPACITY: usize = 10_000;
/// Longer user agents (rare, often junk) are classified every time rather than cached.
const MAX_CACHED_LEN: usize = 512;

pub(crate) struct UserAgents(Cache<String, Result<UserAgentInfo, BotKind>>);

impl UserAgents {
    pub fn new() -> Self {
        Self(Cache::new(CAPACITY))
    }

    /// The same answer as [`classify`], from the cache when this user agent was seen recently.
    pub fn classify(&self, user_agent: &str) -> Result<UserAgentInfo, BotKind> {
        if user_agent.len() > MAX_CACHED_LEN {
            return classify(user_agent);
        }
        if let Some(known) = self.0.get(user_agent) {
            return known;
        }
        let answer = classify(user_agent);
        self.0.insert(user_agent.to_owned(), answer.clone());
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_answers_equal_fresh_ones() {
        let agents = UserAgents::new();
        let long = format!("Mozilla/5.0 {}", "x".repeat(MAX_CACHED_LEN));
        let samples = [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "curl/8.5.0",
            "",
            long.as_str(),
        ];
        for _ in 0..2 {
            for ua in samples {
                assert_eq!(agents.classify(ua), classify(ua), "{ua}");
            }
        }
        assert_eq!(
            agents.0.len(),
            samples.len() - 1,
            "the long one is not cached"
        );
    }
}
