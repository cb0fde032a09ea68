//! Where the EST server is: `https://HOST[:PORT][/.well-known/est[/LABEL]]` (RFC 7030 §3.2.2).

use crate::error::EstError;
use std::fmt;

/// An EST server and its optional CA label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstUrl {
    /// The host name (or IP address) the server's certificate must name.
    pub host: String,
    /// The TCP port (443 when the URL has none).
    pub port: u16,
    /// The CA label (`/.well-known/est/LABEL/…`), if any.
    pub label: Option<String>,
}

impl EstUrl {
    /// Parses `https://HOST[:PORT][/.well-known/est[/LABEL]][/]`.
    pub fn parse(url: &str) -> Result<EstUrl, EstError> {
        let bad = |why| EstError::Url {
            url: url.to_owned(),
            why,
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("EST runs over https://"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
                host,
                port.parse().map_err(|_| bad("the port is not a number"))?,
            ),
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let path = path.trim_end_matches('/');
        let label = match path {
            "" | ".well-known/est" => None,
            _ => {
                let label = path
                    .strip_prefix(".well-known/est/")
                    .ok_or_else(|| bad("the path is not /.well-known/est[/LABEL]"))?;
                if label.is_empty() || label.contains('/') || label.contains('?') {
                    return Err(bad("the label is one path segment"));
                }
                Some(label.to_owned())
            }
        };
        Ok(EstUrl {
            host: host.to_owned(),
            port,
            label,
        })
    }

    /// The request path of `operation` (`cacerts`, `simpleenroll`, …).
    pub fn path(&self, operation: &str) -> String {
        match &self.label {
            Some(label) => format!("/.well-known/est/{label}/{operation}"),
            None => format!("/.well-known/est/{operation}"),
        }
    }

    /// `HOST:PORT`, for connecting and for the `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for EstUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "https://{}{}",
            self.authority(),
            self.path("").trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_of_rfc_7030() {
        let u = EstUrl::parse("https://est.example:8443/.well-known/est/arbitraryLabel1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("est.example", 8443));
        assert_eq!(
            u.path("simpleenroll"),
            "/.well-known/est/arbitraryLabel1/simpleenroll"
        );
        let u = EstUrl::parse("https://est.example").unwrap();
        assert_eq!((u.port, u.label.clone()), (443, None));
        assert_eq!(u.path("cacerts"), "/.well-known/est/cacerts");
        assert_eq!(
            EstUrl::parse("https://h:1/.well-known/est/").unwrap().label,
            None
        );
        let v6 = EstUrl::parse("https://[::1]:9443").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9443));
        assert_eq!(v6.authority(), "[::1]:9443");
    }

    #[test]
    fn refuses_what_is_not_an_est_url() {
        for bad in [
            "http://est.example",
            "https://",
            "https://h:x",
            "https://h/other",
            "https://h/.well-known/est/a/b",
        ] {
            assert!(EstUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
