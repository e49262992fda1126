//! The town's certificate authority, for `gt serve`: a CA made once per town, and the
//! endpoint's certificate for the host of `serve.url`, signed by it. Agents trust that CA
//! alone (its certificate travels with each dispatch; it is public). Keys stay in
//! `.gt/serve/` (mode 0600), host-only. Made with the `openssl` command, as git's network
//! operations go through the `git` command: no key-generation code of our own.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Where a town keeps its CA and the endpoint's key pair.
pub fn dir(town_root: &Path) -> PathBuf {
    town_root.join(super::DB_DIR).join("serve")
}

/// The files of the endpoint's TLS identity.
pub struct Identity {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The town CA's certificate (PEM), made if the town has none yet.
pub fn ca_pem(town_root: &Path) -> Result<String> {
    let d = dir(town_root);
    let _lock = lock(&d)?;
    ensure_ca(&d)?;
    std::fs::read_to_string(d.join("ca.pem"))
        .map_err(|e| Error::io(format!("reading {}", d.join("ca.pem").display()), e))
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// The CA and the certificate were there and agree.
    Nothing,
    /// A new certificate, because the one there was missing, made for another host, or
    /// not signed by the current CA (a CA made anew after its files were deleted).
    Certificate,
    /// A new CA (there was none) and a certificate it signs.
    Both,
}

/// The CA and a certificate for `host` (an IP address or a DNS name) that verifies
/// against it, made when missing, when the certificate was made for another host, or
/// when it does not verify against the CA there now (the CA was made anew).
pub fn ensure(town_root: &Path, host: &str) -> Result<(Identity, Made)> {
    let d = dir(town_root);
    let _lock = lock(&d)?;
    let new_ca = ensure_ca(&d)?;
    let id = Identity {
        ca_cert: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
    };
    let san = if host.parse::<std::net::IpAddr>().is_ok() {
        format!("IP:{host}")
    } else {
        format!("DNS:{host}")
    };
    let made_for = std::fs::read_to_string(d.join("server.san")).unwrap_or_default();
    if made_for.trim() == san && id.key.is_file() && consistent(town_root, host).is_ok() {
        return Ok((id, Made::Nothing));
    }
    let tmp = crate::util::TempDir::new_in(&d, "cert")?;
    let t = tmp.path();
    let ext = format!(
        "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    );
    std::fs::write(t.join("ext.cnf"), ext).map_err(|e| Error::io("writing ext.cnf", e))?;
    new_key(
        t,
        "server.key",
        &["-new", "-out", "server.csr", "-subj", "/CN=gt serve"],
    )?;
    let serial = format!("0x{}", crate::util::random_hex(16));
    let ca = d.join("ca.pem").to_string_lossy().into_owned();
    let ca_key = d.join("ca.key").to_string_lossy().into_owned();
    openssl(
        t,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &serial,
            "-days",
            "825",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    )?;
    install(t, d.as_path(), "server.key", "server.pem")?;
    crate::util::write_atomic(&d.join("server.san"), san.as_bytes())?;
    // A CA key that is not the CA certificate's signs certificates nobody can verify.
    consistent(town_root, host).map_err(|why| {
        Error::conflict(
            format!("the certificate just made for gt serve: {why}"),
            "the town CA's key and certificate do not match: delete .gt/serve/ca.pem and \
             .gt/serve/ca.key and gt serve makes a new CA (agents already running must be \
             dispatched again)"
                .to_string(),
        )
    })?;
    let made = if new_ca {
        Made::Both
    } else {
        Made::Certificate
    };
    Ok((id, made))
}

/// Whether the endpoint certificate in the town's files verifies against the town CA
/// there now, for `host`, today: Err(why not), in words for `gt doctor`.
pub fn consistent(town_root: &Path, host: &str) -> std::result::Result<(), String> {
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
    let d = dir(town_root);
    let ca = std::fs::read(d.join("ca.pem")).map_err(|_| "no town CA (.gt/serve/ca.pem)")?;
    let cert = std::fs::read(d.join("server.pem"))
        .map_err(|_| "no endpoint certificate (.gt/serve/server.pem)")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        let c = c.map_err(|e| format!("the town CA certificate: {e}"))?;
        roots
            .add(c)
            .map_err(|e| format!("the town CA certificate: {e}"))?;
    }
    let leaf = CertificateDer::pem_slice_iter(&cert)
        .next()
        .ok_or("the endpoint certificate holds no certificate")?
        .map_err(|e| format!("the endpoint certificate: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("the town CA certificate: {e}"))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a host name: {e}"))?;
    use rustls::client::danger::ServerCertVerifier;
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| format!("the endpoint certificate does not verify against the town CA: {e}"))
}

/// The town's PKI files, locked against a second maker (`gt serve` and `gt sling` may
/// both find the CA missing): two makers would leave one's key beside the other's
/// certificate.
fn lock(d: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    set_mode(d, 0o700)?;
    let path = d.join("pki.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    f.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(f)
}

/// Make the CA when it is missing: true when it did.
fn ensure_ca(d: &Path) -> Result<bool> {
    if d.join("ca.pem").is_file() && d.join("ca.key").is_file() {
        return Ok(false);
    }
    std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    set_mode(d, 0o700)?;
    let tmp = crate::util::TempDir::new_in(d, "ca")?;
    let t = tmp.path();
    new_key(
        t,
        "ca.key",
        &[
            "-x509",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-sha256",
            "-subj",
            "/CN=gt town CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    install(t, d, "ca.key", "ca.pem")?;
    Ok(true)
}

/// Move a key (made 0600 first) and its certificate from `from` into `to`: the key
/// first, so a certificate is never there without its key (which makes it again).
fn install(from: &Path, to: &Path, key: &str, cert: &str) -> Result<()> {
    set_mode(&from.join(key), 0o600)?;
    for f in [key, cert] {
        std::fs::rename(from.join(f), to.join(f))
            .map_err(|e| Error::io(format!("installing {f}"), e))?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("restricting {}", p.display()), e))
}

/// `openssl req` making a new P-256 key into `key` (unencrypted: it is kept 0600 in a
/// host-only directory), with the rest of `args`.
fn new_key(dir: &Path, key: &str, args: &[&str]) -> Result<()> {
    let mut all = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
    ];
    all.extend_from_slice(args);
    openssl(dir, &all)
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| {
            Error::io(
                "running openssl to make the town's certificates (Debian: apt-get install openssl)",
                e,
            )
        })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "openssl {} failed: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
