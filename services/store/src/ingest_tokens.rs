//! Site-scoped ingest tokens: what lets a server-side sender set an event's `ip`, `user_agent`,
//! `timestamp` and `id`. Without one, anyone could forge visitors, bypass the bot filter and
//! backdate events into any day of any site. Shown once, stored as SHA-256 (256 random bits).

use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::postgres::Pool;

const TOKEN_PREFIX: &str = "bit_";
/// Longest string worth hashing as a token (a real one is 68 characters).
pub const MAX_TOKEN_LEN: usize = 200;

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token for the site `domain` (normalised); `None` when no such site exists. The only
/// time the token itself exists outside its holder's hands.
pub async fn create(pool: &Pool, domain: &str) -> Result<Option<String>, StoreError> {
    let secret: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let prefix: String = token.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let inserted = pool
        .get()
        .await?
        .execute(
            "INSERT INTO ingest_tokens (site_id, prefix, token_hash)
             SELECT id, $2, $3 FROM sites WHERE domain = $1",
            &[&domain, &prefix, &token_hash(&token)],
        )
        .await?;
    Ok((inserted == 1).then_some(token))
}

/// The site a token belongs to, if the token is valid.
pub async fn site_for_token(pool: &Pool, token: &str) -> Result<Option<String>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT s.domain FROM ingest_tokens t JOIN sites s ON s.id = t.site_id
             WHERE t.token_hash = $1",
            &[&token_hash(token)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
