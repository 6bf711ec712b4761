//! Spark's redaction of secrets: what counts as one, and how it is hidden wherever options,
//! errors or descriptions reach a person or a file (logs, progress JSON, `sluice queries`,
//! the console).
//!
//! The rules are Spark's:
//!
//! * A key/value pair is sensitive when `spark.redaction.regex` — default
//!   `(?i)secret|password|token|access[.]?key` (Spark 4.0, SPARK-48930; `access[.]key` before) —
//!   matches **the key or the value** (`Utils.redact`); the value is then replaced by
//!   `*********(redacted)` (`Utils.REDACTION_REPLACEMENT_TEXT`).
//! * Kafka's `sasl.jaas.config` keeps its shape and only loses its credentials
//!   (`KafkaRedactionUtil.redactJaasParam`): every `name=value` option whose name contains
//!   `password` or `clientSecret`, or matches the pattern, becomes `name="*********(redacted)"`,
//!   so the login module, `username` and `serviceName` stay readable.
//!
//! Two additions of sluice's, because its values reach people in places Spark's do not:
//!
//! * The properties librdkafka itself flags as sensitive (its `_RK_SENSITIVE`) whose names the
//!   pattern misses — `ssl.key.pem`, `sasl.oauthbearer.config`, the OAUTHBEARER assertion's
//!   private key and passphrase — are sensitive keys too (with or without the `kafka.` prefix).
//! * Credentials inside URLs (`s3://AKIA…:…@bucket`, `https://user:pass@host`) lose their whole
//!   user-info part: `s3://*********(redacted)@bucket`.
//!
//! Option views cover what the options say; free text — an error from librdkafka or
//! `object_store`, a parser message — may echo a value anywhere. A [`Redactor`] built from a
//! query's options knows its secret values and replaces each (of at least
//! [`MIN_SCRUBBED_LEN`] characters) wherever it appears.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use crate::error::SluiceError;
use crate::options::Options;

/// Spark's `Utils.REDACTION_REPLACEMENT_TEXT`.
pub const REDACTION_REPLACEMENT_TEXT: &str = "*********(redacted)";

/// Spark's default `spark.redaction.regex` (`SECRET_REDACTION_PATTERN`), for messages and docs;
/// [`matches_redaction_pattern`] is its implementation.
pub const SECRET_REDACTION_PATTERN: &str = "(?i)secret|password|token|access[.]?key";

/// Secret values shorter than this are not searched for in free text: replacing every `abc` in
/// an error message would garble it. (Option views redact them regardless of length.)
pub const MIN_SCRUBBED_LEN: usize = 4;

/// The words of [`SECRET_REDACTION_PATTERN`]: `access[.]?key` is `accesskey` or `access.key`.
/// Java's `(?i)` without `UNICODE_CASE` folds ASCII only, as `to_ascii_lowercase` does.
const PATTERN_WORDS: &[&str] = &["secret", "password", "token", "accesskey", "access.key"];

/// librdkafka properties flagged `_RK_SENSITIVE` that hold secrets the pattern does not catch.
/// (Its other sensitive properties are file locations, a CA certificate and `sasl.username`,
/// which Spark's JAAS redaction also leaves readable.)
const LIBRDKAFKA_SENSITIVE: &[&str] = &[
    "ssl.key.pem",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase",
];

/// JAAS option names always redacted (`KafkaRedactionUtil.alwaysRedactedOptions`).
const JAAS_ALWAYS_REDACTED: &[&str] = &["password", "clientsecret"];

/// One `name=value` option of a JAAS entry, as `KafkaRedactionUtil.jaasOptionPattern`: the value
/// double-quoted, single-quoted (both escape-aware) or bare up to whitespace or `;`. ASCII
/// classes, as Java's `\w` and `\s` are.
static JAAS_OPTION: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"([A-Za-z0-9_.$-]+)[ \t\r\n\f]*=[ \t\r\n\f]*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^ \t\r\n\f;]+)"#).ok()
});

/// `scheme://userinfo@`: the user-info is everything up to the authority's last `@`, before any
/// `/`, `?`, `#` or whitespace.
static URL_USERINFO: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s]+)@").ok());

/// Whether Spark's default `spark.redaction.regex` finds a match in `text`.
pub fn matches_redaction_pattern(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    PATTERN_WORDS.iter().any(|w| lower.contains(w))
}

/// Whether the value of option `key` is a secret by its name alone: the pattern matches the key,
/// or it is one of librdkafka's sensitive properties (optionally `kafka.`-prefixed).
pub fn is_sensitive(key: &str) -> bool {
    if matches_redaction_pattern(key) {
        return true;
    }
    let lower = key.to_ascii_lowercase();
    let bare = lower.strip_prefix("kafka.").unwrap_or(&lower);
    LIBRDKAFKA_SENSITIVE.contains(&bare)
}

/// Whether `key` is Kafka's `sasl.jaas.config` (as a `kafka.` option or a bare property).
pub fn is_jaas_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower == "sasl.jaas.config" || lower == "kafka.sasl.jaas.config"
}

/// The value of option `key` as it may be shown: Spark's `Utils.redact` (the whole value when the
/// key or the value matches), `sasl.jaas.config` with only its credentials hidden, and any other
/// value with the credentials of its URLs hidden.
pub fn redact_value<'a>(key: &str, value: &'a str) -> Cow<'a, str> {
    if is_jaas_key(key) {
        return redact_jaas(value);
    }
    if is_sensitive(key) || matches_redaction_pattern(value) {
        return Cow::Borrowed(REDACTION_REPLACEMENT_TEXT);
    }
    redact_url_credentials(value)
}

/// A `sasl.jaas.config` value with its credentials replaced (`KafkaRedactionUtil.redactJaasParam`):
/// `… username="u" password="*********(redacted)";`.
pub fn redact_jaas(jaas: &str) -> Cow<'_, str> {
    if jaas.is_empty() {
        return Cow::Borrowed(jaas);
    }
    let Some(re) = JAAS_OPTION.as_ref() else {
        // Cannot happen (the pattern is fixed); if it did, hide everything.
        return Cow::Borrowed(REDACTION_REPLACEMENT_TEXT);
    };
    re.replace_all(jaas, |c: &regex::Captures<'_>| {
        let name = &c[1];
        if jaas_option_is_secret(name) {
            format!("{name}=\"{REDACTION_REPLACEMENT_TEXT}\"")
        } else {
            c[0].to_string()
        }
    })
}

fn jaas_option_is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    JAAS_ALWAYS_REDACTED.iter().any(|w| lower.contains(w)) || matches_redaction_pattern(name)
}

/// The secret option values of a JAAS entry, unquoted, for [`Redactor`].
fn jaas_secrets(jaas: &str) -> Vec<String> {
    let Some(re) = JAAS_OPTION.as_ref() else { return vec![jaas.to_string()] };
    re.captures_iter(jaas)
        .filter(|c| jaas_option_is_secret(&c[1]))
        .map(|c| {
            let v = &c[2];
            let quoted = v.len() >= 2 && (v.starts_with('"') && v.ends_with('"') || v.starts_with('\'') && v.ends_with('\''));
            if quoted {
                v[1..v.len() - 1].to_string()
            } else {
                v.to_string()
            }
        })
        .collect()
}

/// `text` with the user-info of every URL in it replaced: `https://u:p@host/x` →
/// `https://*********(redacted)@host/x`.
pub fn redact_url_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    match URL_USERINFO.as_ref() {
        Some(re) => re.replace_all(text, format!("${{1}}{REDACTION_REPLACEMENT_TEXT}@").as_str()),
        None => Cow::Borrowed(REDACTION_REPLACEMENT_TEXT),
    }
}

/// The user-info parts of the URLs in `text`, whole and as their password part, raw and
/// percent-decoded.
fn url_credentials(text: &str) -> Vec<String> {
    let Some(re) = URL_USERINFO.as_ref() else { return Vec::new() };
    let mut out = Vec::new();
    for c in re.captures_iter(text) {
        let userinfo = &c[2];
        let mut parts = vec![userinfo.to_string()];
        if let Some((_, password)) = userinfo.split_once(':') {
            parts.push(password.to_string());
        }
        for p in parts {
            let decoded = percent_decode(&p);
            if decoded != p {
                out.push(decoded);
            }
            out.push(p);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(high * 16 + low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The secret values of one query (or job), to scrub from free text: errors that quote an
/// option value, messages of librdkafka or `object_store`, parser errors.
///
/// A value is a secret when its key [`is_sensitive`], when it is a credential inside a
/// `sasl.jaas.config`, or when it is the user-info of a URL in any value. (Values that merely
/// *contain* a word of the pattern are redacted in option views, as Spark does, but not searched
/// for in text: a topic named `tokens` would otherwise vanish from every message.)
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor that knows no secret (it still hides URL credentials).
    pub fn new() -> Self {
        Self::default()
    }

    /// The secrets of `options`.
    pub fn from_options(options: &Options) -> Self {
        let mut r = Self::new();
        r.add_options(options);
        r
    }

    /// Adds the secrets of `options`.
    pub fn add_options(&mut self, options: &Options) {
        self.add_pairs(options.iter());
    }

    /// Adds the secrets of key/value pairs (options, client properties).
    pub fn add_pairs<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (key, value) in pairs {
            if is_jaas_key(key) {
                for s in jaas_secrets(value) {
                    self.add_secret(&s);
                }
            } else if is_sensitive(key) {
                self.add_secret(value);
            }
            for s in url_credentials(value) {
                self.add_secret(&s);
            }
        }
    }

    /// Adds one secret value (ignored when shorter than [`MIN_SCRUBBED_LEN`]), also in the
    /// escaped form `{:?}` prints it in.
    pub fn add_secret(&mut self, secret: &str) {
        let mut forms = vec![secret.to_string()];
        let escaped = format!("{secret:?}");
        let escaped = &escaped[1..escaped.len() - 1];
        if escaped != secret {
            forms.push(escaped.to_string());
        }
        for s in forms {
            if s.chars().count() >= MIN_SCRUBBED_LEN && !self.secrets.contains(&s) {
                self.secrets.push(s);
            }
        }
        self.secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// True when no secret value is known.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every known secret and every URL credential replaced by
    /// [`REDACTION_REPLACEMENT_TEXT`].
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTION_REPLACEMENT_TEXT));
            }
        }
        let with_urls = match redact_url_credentials(&out) {
            Cow::Owned(o) => Some(o),
            Cow::Borrowed(_) => None,
        };
        match with_urls {
            Some(o) => Cow::Owned(o),
            None => out,
        }
    }

    /// `e` with its message and context scrubbed.
    pub fn scrub_error(&self, mut e: SluiceError) -> SluiceError {
        e.message = self.scrub(&e.message).into_owned();
        for c in &mut e.context {
            *c = self.scrub(c).into_owned();
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = REDACTION_REPLACEMENT_TEXT;

    #[test]
    fn the_pattern_is_sparks_default() {
        for key in [
            "kafka.sasl.password",
            "spark.hadoop.fs.s3a.secret.key",
            "fs.s3a.access.key",
            "fs.s3.awsAccessKeyId",
            "aws_secret_access_key",
            "aws_session_token",
            "kafka.sasl.oauthbearer.client.secret",
            "kafka.ssl.keystore.password",
            "PASSWORD",
            "spark.authenticate.secret",
            "kafka.sasl.oauthbearer.token.endpoint.url",
        ] {
            assert!(is_sensitive(key), "{key}");
        }
        for key in ["path", "kafka.bootstrap.servers", "subscribe", "kafka.sasl.username", "kafka.ssl.key.location", "accessKeys"]
        {
            assert_eq!(is_sensitive(key), key == "accessKeys", "{key}");
        }
        // `access[.]?key`: one optional dot, nothing else between.
        assert!(!matches_redaction_pattern("access_key"));
        assert!(!matches_redaction_pattern("access-key"));
        assert!(matches_redaction_pattern("ACCESS.KEY"));
    }

    #[test]
    fn librdkafka_sensitive_properties_the_pattern_misses() {
        assert!(is_sensitive("kafka.ssl.key.pem"));
        assert!(is_sensitive("ssl.key.pem"));
        assert!(is_sensitive("kafka.sasl.oauthbearer.config"));
        assert!(is_sensitive("KAFKA.SASL.OAUTHBEARER.ASSERTION.PRIVATE.KEY.PASSPHRASE"));
        assert!(!is_sensitive("kafka.ssl.certificate.pem"));
    }

    #[test]
    fn a_value_is_redacted_when_its_key_or_itself_matches() {
        assert_eq!(redact_value("kafka.sasl.password", "hunter2"), R);
        assert_eq!(redact_value("path", "s3://lake/in"), "s3://lake/in");
        // Spark's Utils.redact searches the value too (SPARK-20435).
        assert_eq!(redact_value("sun.java.command", "--conf x.password=p"), R);
        assert_eq!(redact_value("subscribe", "tokens"), R);
        // Short secrets are hidden in option views all the same.
        assert_eq!(redact_value("kafka.sasl.password", "p"), R);
    }

    #[test]
    fn jaas_config_keeps_its_shape_and_loses_its_credentials() {
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr3t pw";"#;
        assert_eq!(
            redact_value("kafka.sasl.jaas.config", jaas),
            format!(r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="{R}";"#)
        );
        // Single-quoted, bare and escaped-quote values; OAUTHBEARER's clientSecret; serviceName kept.
        let jaas = r#"M required clientId='app' clientSecret='c\'s' serviceName=kafka password=bare tokenauth=true;"#;
        assert_eq!(
            redact_jaas(jaas),
            format!(r#"M required clientId='app' clientSecret="{R}" serviceName=kafka password="{R}" tokenauth="{R}";"#)
        );
        let r = Redactor::from_options(&Options::from_pairs([(
            "kafka.sasl.jaas.config",
            r#"X required username="alice" password="s3cr3t pw";"#,
        )]));
        assert_eq!(r.scrub("auth failed for alice with s3cr3t pw"), format!("auth failed for alice with {R}"));
    }

    #[test]
    fn url_credentials_lose_their_user_info() {
        assert_eq!(redact_url_credentials("s3://AKIAEXAMPLE:wJalrXUt@bucket/in"), format!("s3://{R}@bucket/in"));
        assert_eq!(
            redact_url_credentials("GET https://user:p@ss@host:8080/x?a=b failed; see http://h/y"),
            format!("GET https://{R}@host:8080/x?a=b failed; see http://h/y")
        );
        assert_eq!(redact_url_credentials("mail me at a@b.c, or s3://bucket/a@b"), "mail me at a@b.c, or s3://bucket/a@b");
        assert_eq!(redact_value("path", "s3://k:s@b/p"), format!("s3://{R}@b/p"));
        let r = Redactor::from_options(&Options::from_pairs([("kafka.sasl.oauthbearer.url", "https://app:c%2Fs3cret@idp/t")]));
        assert_eq!(r.scrub("idp refused secret c/s3cret"), format!("idp refused secret {R}"));
    }

    #[test]
    fn redacted_options_keep_keys_and_plain_values() {
        let o = Options::from_pairs([
            ("connector", "kafka"),
            ("kafka.bootstrap.servers", "b:9092"),
            ("kafka.sasl.password", "hunter22"),
            ("kafka.ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
        ]);
        let shown = |key: &str| o.get(key).map(|v| redact_value(key, v).into_owned());
        assert_eq!(shown("connector").as_deref(), Some("kafka"));
        assert_eq!(shown("kafka.bootstrap.servers").as_deref(), Some("b:9092"));
        assert_eq!(shown("kafka.sasl.password").as_deref(), Some(R));
        assert_eq!(shown("kafka.ssl.key.pem").as_deref(), Some(R));
        // Debug of Options is the redacted view: a derived Debug holding options is safe to log.
        let debug = format!("{o:?}");
        assert!(!debug.contains("hunter22") && !debug.contains("BEGIN PRIVATE"), "{debug}");
        assert!(debug.contains(R) && debug.contains("b:9092"), "{debug}");
    }

    #[test]
    fn the_redactor_scrubs_every_known_secret_from_free_text() {
        let o = Options::from_pairs([
            ("kafka.sasl.password", "hunter22"),
            ("kafka.ssl.key.password", "hunter22-longer"),
            ("kafka.sasl.oauthbearer.client.secret", "abc"),
            ("kafka.ssl.keystore.password", "q\"uote"),
            ("subscribe", "tokens"),
        ]);
        let r = Redactor::from_options(&o);
        assert_eq!(
            r.scrub("bad: hunter22-longer / hunter22 / hunter22 / abc / tokens"),
            format!("bad: {R} / {R} / {R} / abc / tokens"),
            "longest first, every occurrence, short secrets and pattern-like values left alone"
        );
        // The escaped form {:?} prints.
        assert_eq!(r.scrub(&format!("{:?}", "q\"uote")), format!("\"{R}\""));
        let e = SluiceError::user("invalid value 'hunter22'").context("opening hunter22");
        let e = r.scrub_error(e);
        assert_eq!(e.one_line(), format!("opening {R}: invalid value '{R}'"));
        assert!(Redactor::new().is_empty());
        assert_eq!(Redactor::new().scrub("https://u:p@h"), format!("https://{R}@h"));
        assert_eq!(format!("{r:?}"), "Redactor(4 secrets)");
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
