//! Site domains: the one normalised spelling used as the key everywhere (stream subject, rollups).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 253 characters")]
    TooLong,
    #[error("contains {0:?}; only letters, digits, '-' and '.' are allowed")]
    BadCharacter(char),
    #[error("has an empty label (leading, trailing or doubled '.')")]
    EmptyLabel,
}

/// Lower-cases, trims, drops a leading `www.` and checks the result is a plain host name.
///
/// `Example.COM`, `www.example.com` and ` example.com ` are all `example.com`.
pub fn normalize_domain(raw: &str) -> Result<String, DomainError> {
    let lower = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let domain = lower.strip_prefix("www.").unwrap_or(&lower);
    if domain.is_empty() {
        return Err(DomainError::Empty);
    }
    if domain.len() > 253 {
        return Err(DomainError::TooLong);
    }
    if let Some(c) = domain
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(DomainError::BadCharacter(c));
    }
    if domain.split('.').any(str::is_empty) {
        return Err(DomainError::EmptyLabel);
    }
    Ok(domain.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_whitespace_and_www() {
        assert_eq!(
            normalize_domain(" WWW.Example.COM ").as_deref(),
            Ok("example.com")
        );
        assert_eq!(
            normalize_domain("shop.example.co.uk.").as_deref(),
            Ok("shop.example.co.uk")
        );
        assert_eq!(normalize_domain("localhost").as_deref(), Ok("localhost"));
    }

    #[test]
    fn rejects_what_is_not_a_host_name() {
        assert_eq!(normalize_domain(""), Err(DomainError::Empty));
        assert_eq!(normalize_domain(" . "), Err(DomainError::Empty));
        assert_eq!(
            normalize_domain("exa mple.com"),
            Err(DomainError::BadCharacter(' '))
        );
        assert_eq!(
            normalize_domain("example.com/path"),
            Err(DomainError::BadCharacter('/'))
        );
        assert_eq!(normalize_domain("a..b"), Err(DomainError::EmptyLabel));
        assert_eq!(
            normalize_domain(&"a".repeat(254)),
            Err(DomainError::TooLong)
        );
    }
}
