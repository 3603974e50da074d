//! Owners and their credentials: passwords (Argon2id) for the dashboard, API keys for the API.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::postgres::{Pool, StoreError};

/// Marks Beacon API keys so they are recognisable (e.g. by secret scanners).
const KEY_PREFIX: &str = "bk_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    /// May see the pipeline as a whole (lag, dead letters, every site's backfills).
    pub operator: bool,
}

/// Checks an email address well enough to catch typos; returns it trimmed and lower-cased.
pub fn normalize_email(raw: &str) -> Result<String, StoreError> {
    let email = raw.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(StoreError::Invalid(format!(
            "'{}' is not an email address",
            raw.trim()
        )))
    }
}

/// Argon2id with a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Unwritable {
            what: "hashing the password",
            source: e.to_string().into(),
        })
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Adds an owner. An existing email is an error.
pub async fn add_user(
    pool: &Pool,
    email: &str,
    password: Option<&str>,
    operator: bool,
) -> Result<User, StoreError> {
    let email = normalize_email(email)?;
    let password_hash = password.map(hash_password).transpose()?;
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO users (email, password_hash, operator) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING RETURNING id",
            &[&email, &password_hash, &operator],
        )
        .await?
        .ok_or_else(|| StoreError::Exists(format!("user {email}")))?;
    Ok(User {
        id: row.get(0),
        email,
        operator,
    })
}

/// Makes `email` an operator (or, `operator` false, an owner only again). False when there is
/// no such user.
pub async fn set_operator(pool: &Pool, email: &str, operator: bool) -> Result<bool, StoreError> {
    let email = normalize_email(email)?;
    let client = pool.get().await?;
    let changed = client
        .execute(
            "UPDATE users SET operator = $2 WHERE email = $1",
            &[&email, &operator],
        )
        .await?;
    Ok(changed == 1)
}

pub async fn find_user(pool: &Pool, email: &str) -> Result<Option<User>, StoreError> {
    let email = normalize_email(email)?;
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, email, operator FROM users WHERE email = $1",
            &[&email],
        )
        .await?;
    Ok(row.map(|r| User {
        id: r.get(0),
        email: r.get(1),
        operator: r.get(2),
    }))
}

fn key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Creates an API key for `user`; the only time the key itself exists outside its holder's hands.
pub async fn create_key(pool: &Pool, user: &User) -> Result<String, StoreError> {
    let secret: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO api_keys (user_id, prefix, key_hash) VALUES ($1, $2, $3)",
            &[&user.id, &prefix, &key_hash(&key)],
        )
        .await?;
    Ok(key)
}

/// One API key as its owner sees it: never the key itself, only its first characters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: i64,
    /// The key's first characters (`bk_1a2b3c`), to tell keys apart.
    pub prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// To the minute; `None` if never used.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `email`'s API keys, oldest first; `None` when there is no such user.
pub async fn list_keys(pool: &Pool, email: &str) -> Result<Option<Vec<KeyInfo>>, StoreError> {
    let Some(user) = find_user(pool, email).await? else {
        return Ok(None);
    };
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, prefix, created_at, last_used_at FROM api_keys WHERE user_id = $1 ORDER BY id",
            &[&user.id],
        )
        .await?;
    Ok(Some(
        rows.iter()
            .map(|r| KeyInfo {
                id: r.get(0),
                prefix: r.get(1),
                created_at: r.get(2),
                last_used_at: r.get(3),
            })
            .collect(),
    ))
}

/// Revokes `email`'s key `id` (it stops working at once). False when the user has no such key.
pub async fn revoke_key(pool: &Pool, email: &str, id: i64) -> Result<bool, StoreError> {
    let email = normalize_email(email)?;
    let client = pool.get().await?;
    let deleted = client
        .execute(
            "DELETE FROM api_keys k USING users u
             WHERE k.user_id = u.id AND u.email = $1 AND k.id = $2",
            &[&email, &id],
        )
        .await?;
    Ok(deleted == 1)
}

/// Sets `email`'s dashboard password and signs out every session of the user (a password
/// changed because it leaked must not leave the thief signed in). False when there is no such
/// user.
pub async fn set_password(pool: &Pool, email: &str, password: &str) -> Result<bool, StoreError> {
    let email = normalize_email(email)?;
    let hash = hash_password(password)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let changed = tx
        .execute(
            "UPDATE users SET password_hash = $2 WHERE email = $1",
            &[&email, &hash],
        )
        .await?;
    tx.execute(
        "DELETE FROM login_sessions s USING users u WHERE s.user_id = u.id AND u.email = $1",
        &[&email],
    )
    .await?;
    tx.commit().await?;
    Ok(changed == 1)
}

/// The owner of an API key, if the key is valid.
pub async fn user_for_key(pool: &Pool, key: &str) -> Result<Option<User>, StoreError> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 200 {
        return Ok(None);
    }
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT u.id, u.email, k.id, k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute',
                    u.operator
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1",
            &[&key_hash(key)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    // Last use is kept to the minute: no write on every request.
    if row.get::<_, bool>(3) {
        let key_id: i64 = row.get(2);
        client
            .execute(
                "UPDATE api_keys SET last_used_at = now() WHERE id = $1",
                &[&key_id],
            )
            .await?;
    }
    Ok(Some(User {
        id: row.get(0),
        email: row.get(1),
        operator: row.get(4),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Owner@Example.COM ").ok().as_deref(),
            Some("owner@example.com")
        );
        for bad in [
            "",
            "owner",
            "@example.com",
            "owner@localhost",
            "a b@example.com",
            "owner@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert_ne!(
            hash,
            hash_password("correct horse").expect("hash"),
            "salted"
        );
    }
}
