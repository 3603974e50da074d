//! Splitting a page URL into the parts Beacon stores (host name and path).

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// Host without a leading `www.`, lower case.
    pub hostname: String,
    /// Path only: no query string, no fragment; always starts with `/`.
    pub pathname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not an absolute URL: {0}")]
    Unparsable(String),
    #[error("must use http or https")]
    Scheme,
    #[error("has no host")]
    NoHost,
}

/// Parses an absolute http(s) page URL.
pub fn split_url(raw: &str) -> Result<UrlParts, UrlError> {
    let url = Url::parse(raw.trim()).map_err(|e| UrlError::Unparsable(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    let host = url.host_str().ok_or(UrlError::NoHost)?.to_ascii_lowercase();
    let hostname = host.strip_prefix("www.").unwrap_or(&host).to_string();
    let pathname = if url.path().is_empty() {
        "/".to_string()
    } else {
        url.path().to_string()
    };
    Ok(UrlParts { hostname, pathname })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_host_and_path_only() {
        let parts = split_url("https://WWW.Example.com/a/b?utm_source=x#top").expect("valid");
        assert_eq!(
            parts,
            UrlParts {
                hostname: "example.com".into(),
                pathname: "/a/b".into()
            }
        );
        assert_eq!(
            split_url("http://example.com").expect("valid").pathname,
            "/"
        );
    }

    #[test]
    fn rejects_non_web_urls() {
        assert!(matches!(
            split_url("/relative"),
            Err(UrlError::Unparsable(_))
        ));
        assert_eq!(split_url("ftp://example.com/"), Err(UrlError::Scheme));
        assert!(split_url("data:text/plain,hi").is_err());
    }
}
