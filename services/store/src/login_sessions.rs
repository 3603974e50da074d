//! Dashboard sign-in: password check (Argon2id, constant work whether or not the email exists) and
//! sessions — a 256-bit random token in the browser's cookie, stored here as its SHA-256.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::postgres::{Pool, StoreError};
use crate::users::{User, hash_password, normalize_email, verify_password};

/// How long a sign-in lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Password hashes computed at once, process-wide.
const HASHING_AT_ONCE: usize = 2;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);
/// Longest password hashed (a longer one is simply wrong: no megabyte of input is hashed).
const MAX_PASSWORD_LEN: usize = 1024;

/// The user if `password` is theirs. Unknown emails cost the same Argon2 work as wrong passwords,
/// so timing does not tell which emails exist.
pub async fn check_password(
    pool: &Pool,
    email: &str,
    password: &str,
) -> Result<Option<User>, StoreError> {
    let Ok(email) = normalize_email(email) else {
        return Ok(None);
    };
    if password.len() > MAX_PASSWORD_LEN {
        return Ok(None);
    }
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, email, password_hash, operator FROM users WHERE email = $1",
            &[&email],
        )
        .await?;
    let (user, phc) = match row {
        Some(r) => (
            Some(User {
                id: r.get(0),
                email: r.get(1),
                operator: r.get(3),
            }),
            r.get::<_, Option<String>>(2),
        ),
        None => (None, None),
    };
    // The connection goes back to the pool before the (slow, CPU-bound) hash; at most
    // HASHING_AT_ONCE hashes run at once, so sign-in attempts cannot take every core.
    drop(client);
    let _permit = HASHING.acquire().await.ok();
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password(&password, &phc),
        None => {
            // Same work as a real check, same answer as a wrong password.
            let _ = hash_password(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    Ok(user.filter(|_| matches))
}

/// Starts a session for `user`; returns the token for the cookie (the only copy).
pub async fn start(pool: &Pool, user: &User) -> Result<String, StoreError> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let client = pool.get().await?;
    let ttl_secs = SESSION_TTL.as_secs_f64();
    client
        .execute(
            "INSERT INTO login_sessions (token_hash, user_id, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))",
            &[&token_hash(&token), &user.id, &ttl_secs],
        )
        .await?;
    // Expired sessions go on the way.
    client
        .execute("DELETE FROM login_sessions WHERE expires_at < now()", &[])
        .await?;
    Ok(token)
}

/// The signed-in user of a cookie token, if the session exists and has not expired.
pub async fn user_for_token(pool: &Pool, token: &str) -> Result<Option<User>, StoreError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT u.id, u.email, u.operator FROM login_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > now()",
            &[&token_hash(token)],
        )
        .await?;
    Ok(row.map(|r| User {
        id: r.get(0),
        email: r.get(1),
        operator: r.get(2),
    }))
}

/// Ends the session of `token` (signing out).
pub async fn end(pool: &Pool, token: &str) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "DELETE FROM login_sessions WHERE token_hash = $1",
            &[&token_hash(token)],
        )
        .await?;
    Ok(())
}
