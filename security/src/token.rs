//! Bearer tokens: how a user without a client certificate authenticates (`sluice submit`,
//! `queries`, `stop`, and the HTTP API), sent as `authorization: Bearer <token>`.
//!
//! A driver accepts the tokens listed in its token file (one per line; blank lines and `#`
//! comments ignored), re-read when the file changes, so a token is revoked by deleting its line.
//! Tokens are compared in constant time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderMap;
use sluice_common::error::{Result, SluiceError};
use subtle::ConstantTimeEq;

use crate::files::Reloading;

/// The shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// The tokens a driver accepts.
pub struct AcceptedTokens {
    tokens: Reloading<Vec<String>>,
}

impl std::fmt::Debug for AcceptedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcceptedTokens(..)")
    }
}

impl AcceptedTokens {
    /// Reads the token file; it must hold at least one token, none shorter than [`MIN_TOKEN_LEN`].
    pub fn load(path: &Path) -> Result<Arc<Self>> {
        let name = path.display().to_string();
        let tokens = Reloading::new(vec![path.to_path_buf()], move |c| parse_token_file(&c[0], &name))?;
        Ok(Arc::new(Self { tokens }))
    }

    /// Whether `presented` is one of the tokens.
    pub fn accepts(&self, presented: &str) -> bool {
        let tokens = self.tokens.get();
        // Compare with every token, so timing does not tell which one (or how much) matched.
        tokens.iter().fold(false, |found, t| found | bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
    }
}

/// The tokens of a token file's text.
fn parse_token_file(bytes: &[u8], name: &str) -> Result<Vec<String>> {
    let text = std::str::from_utf8(bytes).map_err(|_| SluiceError::user(format!("token file {name} is not UTF-8 text")))?;
    let tokens: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    if tokens.is_empty() {
        return Err(SluiceError::user(format!("token file {name} holds no token")));
    }
    if let Some(short) = tokens.iter().position(|t| t.len() < MIN_TOKEN_LEN) {
        return Err(SluiceError::user(format!(
            "token file {name}: token {} is shorter than {MIN_TOKEN_LEN} characters",
            short + 1
        )));
    }
    Ok(tokens)
}

/// A fresh random secret of 256 bits, as 64 hex digits: bearer tokens, shuffle keys.
pub fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A client's token: read from `path` (its first token) when given.
pub fn client_token(path: Option<&PathBuf>) -> Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let bytes = crate::files::read(path)?;
    let tokens = parse_token_file(&bytes, &path.display().to_string())?;
    Ok(tokens.into_iter().next())
}

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A tonic interceptor that adds `authorization: Bearer <token>` to every call (none without a token).
#[derive(Clone)]
pub struct AttachToken {
    header: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl AttachToken {
    /// Attaches `token`, if any.
    pub fn new(token: Option<&str>) -> Result<Self> {
        let header = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| SluiceError::user("the token holds characters a header cannot carry"))?,
            ),
            None => None,
        };
        Ok(Self { header })
    }
}

impl tonic::service::Interceptor for AttachToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_skip_comments_and_refuse_short_or_no_tokens() {
        let t = parse_token_file(b"# ops\n\n0123456789abcdef\n  fedcba9876543210  \n", "t").unwrap();
        assert_eq!(t, ["0123456789abcdef", "fedcba9876543210"]);
        assert!(parse_token_file(b"# nothing\n", "t").unwrap_err().one_line().contains("holds no token"));
        assert!(parse_token_file(b"short\n", "t").unwrap_err().one_line().contains("shorter than 16"));
    }

    #[test]
    fn only_listed_tokens_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "0123456789abcdef\nfedcba9876543210\n").unwrap();
        let accepted = AcceptedTokens::load(&path).unwrap();
        assert!(accepted.accepts("fedcba9876543210"));
        assert!(!accepted.accepts("fedcba987654321"));
        assert!(!accepted.accepts(""));
    }

    #[test]
    fn bearer_reads_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
