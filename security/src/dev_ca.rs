//! `sluice certs`: a development CA and the certificates a local cluster (or the tests) needs.
//!
//! Production clusters take their certificates from their own PKI (cert-manager, Vault, …):
//! sluice only reads files. For a laptop or CI this writes, into one directory:
//!
//! | file | what |
//! |---|---|
//! | `ca.pem`, `ca-key.pem` | the cluster CA |
//! | `member.pem`, `member-key.pem` | a member certificate for drivers and executors, valid for the given hosts |
//! | `client-ca.pem`, `client-ca-key.pem` | the CA of users' client certificates |
//! | `user.pem`, `user-key.pem` | a user's client certificate |
//! | `token` | a random bearer token for users without a certificate |
//!
//! Keys are written readable by their owner only.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sluice_common::error::{Result, SluiceError};

/// The files [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct DevFiles {
    /// Directory they are in.
    pub dir: PathBuf,
}

impl DevFiles {
    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn cert_error(e: rcgen::Error) -> SluiceError {
    SluiceError::internal(format!("cannot make a certificate: {e}"))
}

fn ca(name: &str, days: u32) -> Result<(String, KeyPair, CertificateParams)> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationName, "sluice development");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, days);
    let key = KeyPair::generate().map_err(cert_error)?;
    let cert = params.self_signed(&key).map_err(cert_error)?;
    Ok((cert.pem(), key, params))
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn leaf(
    name: &str,
    hosts: &[String],
    usages: Vec<ExtendedKeyUsagePurpose>,
    issuer: &Issuer<'_, KeyPair>,
    days: u32,
) -> Result<(String, KeyPair)> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    params.distinguished_name.push(DnType::CommonName, name);
    for h in hosts {
        params.subject_alt_names.push(match h.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(h.clone().try_into().map_err(cert_error)?),
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = usages;
    validity(&mut params, days);
    let key = KeyPair::generate().map_err(cert_error)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_error)?;
    Ok((cert.pem(), key))
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(|e| {
        SluiceError::user(format!("cannot create {}: {e} (sluice certs never overwrites a file)", path.display()))
    })?;
    file.write_all(contents.as_bytes()).map_err(|e| SluiceError::external(format!("cannot write {}: {e}", path.display())))
}

/// Writes a development CA and certificates valid `days` days into `dir` (created if missing);
/// the member certificate is valid for `hosts` (names or IP addresses).
pub fn generate(dir: &Path, hosts: &[String], days: u32) -> Result<DevFiles> {
    if hosts.is_empty() {
        return Err(SluiceError::user("sluice certs needs at least one --host the members are reached at"));
    }
    std::fs::create_dir_all(dir).map_err(|e| SluiceError::user(format!("cannot create {}: {e}", dir.display())))?;
    let (ca_pem, ca_key, ca_params) = ca("sluice cluster CA", days)?;
    let cluster = Issuer::new(ca_params, ca_key);
    let (member_pem, member_key) = leaf(
        "sluice member",
        hosts,
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        &cluster,
        days,
    )?;
    let (client_ca_pem, client_ca_key, client_ca_params) = ca("sluice client CA", days)?;
    let client_ca_key_pem = client_ca_key.serialize_pem();
    let users = Issuer::new(client_ca_params, client_ca_key);
    let (user_pem, user_key) = leaf("sluice user", &[], vec![ExtendedKeyUsagePurpose::ClientAuth], &users, days)?;
    let token = crate::token::random_secret();

    let files = DevFiles { dir: dir.to_path_buf() };
    write(&files.path("ca.pem"), &ca_pem, false)?;
    write(&files.path("ca-key.pem"), &cluster.key().serialize_pem(), true)?;
    write(&files.path("member.pem"), &member_pem, false)?;
    write(&files.path("member-key.pem"), &member_key.serialize_pem(), true)?;
    write(&files.path("client-ca.pem"), &client_ca_pem, false)?;
    write(&files.path("client-ca-key.pem"), &client_ca_key_pem, true)?;
    write(&files.path("user.pem"), &user_pem, false)?;
    write(&files.path("user-key.pem"), &user_key.serialize_pem(), true)?;
    write(&files.path("token"), &format!("{token}\n"), true)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::tls::{ClientAuth, ClusterTls, TlsSettings};

    #[test]
    fn the_files_make_members_and_users_that_tls_tells_apart() {
        let dir = tempfile::tempdir().unwrap();
        let f = generate(dir.path(), &["127.0.0.1".into(), "localhost".into()], 1).unwrap();
        let member = ClusterTls::load(TlsSettings {
            ca: f.path("ca.pem"),
            cert: Some(f.path("member.pem")),
            key: Some(f.path("member-key.pem")),
            client_ca: Some(f.path("client-ca.pem")),
        })
        .unwrap();
        member.server_config(ClientAuth::MembersOnly).unwrap();
        member.server_config(ClientAuth::Anyone).unwrap();
        let pem = |name: &str| {
            use rustls::pki_types::pem::PemObject;
            Arc::new(
                rustls::pki_types::CertificateDer::pem_file_iter(f.path(name)).unwrap().map(|c| c.unwrap()).collect::<Vec<_>>(),
            )
        };
        assert!(member.is_member(&pem("member.pem")));
        assert!(!member.is_member(&pem("user.pem")), "a user certificate is not a member's");
        let key_mode = std::fs::metadata(f.path("member-key.pem")).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key_mode.mode() & 0o777, 0o600);
        let e = generate(dir.path(), &["127.0.0.1".into()], 1).unwrap_err();
        assert!(e.one_line().contains("never overwrites"), "{}", e.one_line());
    }
}
