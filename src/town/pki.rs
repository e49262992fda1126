//! The town's certificate authority, for `gt serve`: a CA made once per town, and the
//! endpoint's certificate for the host of `serve.url`, signed by it. Agents trust that CA
//! alone (its certificate travels with each dispatch; it is public). Keys stay in
//! `.gt/serve/` (mode 0600), host-only. Made with the `openssl` command, as git's network
//! operations go through the `git` command: no key-generation code of our own.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    ensure_ca(&d)?;
    std::fs::read_to_string(d.join("ca.pem"))
        .map_err(|e| Error::io(format!("reading {}", d.join("ca.pem").display()), e))
}

/// The CA and a certificate for `host` (an IP address or a DNS name), made when missing
/// or when the certificate was made for another host.
pub fn ensure(town_root: &Path, host: &str) -> Result<Identity> {
    let d = dir(town_root);
    ensure_ca(&d)?;
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
    if made_for.trim() == san && id.cert.is_file() && id.key.is_file() {
        return Ok(id);
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
    Ok(id)
}

fn ensure_ca(d: &Path) -> Result<()> {
    if d.join("ca.pem").is_file() && d.join("ca.key").is_file() {
        return Ok(());
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
    install(t, d, "ca.key", "ca.pem")
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
