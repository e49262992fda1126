//! `gt image build`: agent images assembled on this machine, without a container
//! registry: a root filesystem of host files (busybox, bash, git and the libraries they
//! need, CA certificates, gt itself) plus, for `claude` and `codex`, the CLI's native
//! binary taken from its npm package, imported into the engine (`docker import`). The
//! CLI's version is pinned and recorded in a label. Nothing is redistributed: each user
//! builds from npm.

use crate::error::{Error, IoContext, Result};
use crate::runtime::docker::DockerRuntime;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user agents run as in these images (the same uid gt uses under root).
const AGENT_UID: u32 = crate::town::workspace::AGENT_USER_WHEN_ROOT.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// busybox, bash, git, CA certificates and gt: for your own agent command.
    Base,
    /// base + Claude Code's native binary (`@anthropic-ai/claude-code`).
    Claude,
    /// base + the Codex CLI's native binary (`@openai/codex`).
    Codex,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Base => "base",
            Kind::Claude => "claude",
            Kind::Codex => "codex",
        }
    }
    pub fn default_image(self) -> &'static str {
        match self {
            // The image a new town's gt.toml names (`defaults.image`): one name everywhere.
            Kind::Base => "gt-agent:latest",
            Kind::Claude => "gt-claude:latest",
            Kind::Codex => "gt-codex:latest",
        }
    }
    fn package(self) -> Option<&'static str> {
        match self {
            Kind::Base => None,
            Kind::Claude => Some("@anthropic-ai/claude-code"),
            Kind::Codex => Some("@openai/codex"),
        }
    }
    /// The executable the package ships for linux x64, and the name it gets in the image.
    fn binary(self) -> &'static str {
        match self {
            Kind::Base => "",
            Kind::Claude => "claude",
            Kind::Codex => "codex",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Built {
    pub image: String,
    pub kind: Kind,
    /// The CLI's npm package and the version built in.
    pub package: Option<String>,
    pub version: Option<String>,
    pub size_bytes: Option<i64>,
    pub seconds: f64,
}

/// Build `kind` as `image` (default [`Kind::default_image`]) with the CLI at `version`
/// (default: npm's latest, resolved and recorded).
pub fn build(
    rt: &DockerRuntime,
    kind: Kind,
    version: Option<&str>,
    image: Option<&str>,
) -> Result<Built> {
    let started = std::time::Instant::now();
    let image = image.unwrap_or(kind.default_image()).to_string();
    let work = crate::util::TempDir::new_in(&std::env::temp_dir(), "gt-image")?;
    let root = work.path().join("rootfs");
    base_rootfs(&root)?;
    let mut changes = vec![
        "ENV PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
        "ENV HOME=/tmp".to_string(),
        format!("USER {AGENT_UID}:{AGENT_UID}"),
        "WORKDIR /".to_string(),
        format!("LABEL gt.image.kind={}", kind.name()),
    ];
    let (mut package, mut resolved) = (None, None);
    if let Some(pkg) = kind.package() {
        let v = version.unwrap_or("latest");
        let (bin, ver) = npm_binary(&work.path().join("npm"), pkg, v, kind.binary())?;
        copy_with_libs(&bin, &root, &format!("/usr/local/bin/{}", kind.binary()))?;
        changes.push(format!("LABEL gt.cli.package={pkg} gt.cli.version={ver}"));
        package = Some(pkg.to_string());
        resolved = Some(ver);
    }
    let tar = work.path().join("rootfs.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .ctx(|| "running tar".to_string())?;
    if !st.success() {
        return Err(Error::Other(format!("tar of {} failed", root.display())));
    }
    rt.import_rootfs(&tar, &image, &changes)?;
    Ok(Built {
        size_bytes: rt.image_size(&image)?,
        image,
        kind,
        package,
        version: resolved,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn need(name: &str, package: &str) -> Result<PathBuf> {
    which(name).ok_or_else(|| {
        Error::usage(format!("{name} is not installed on this machine")).with_hint(format!(
            "install it (Debian: apt-get install {package}); gt builds images from host files"
        ))
    })
}

/// Copy `bin` to `dest` (a path inside the image) with every shared library `ldd` names.
fn copy_with_libs(bin: &Path, root: &Path, dest: &str) -> Result<()> {
    let target = root.join(dest.trim_start_matches('/'));
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(bin, &target).ctx(|| format!("copying {}", bin.display()))?;
    // A static binary has none: nothing more to copy.
    for lib in crate::util::shared_libs(bin)? {
        let to = root.join(lib.strip_prefix("/").unwrap_or(&lib));
        if to.exists() {
            continue;
        }
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        // Follows the symlink: the image gets the library itself under the name asked for.
        std::fs::copy(&lib, &to).ctx(|| format!("copying {}", lib.display()))?;
    }
    Ok(())
}

/// busybox (with its applets), bash, git, CA certificates, gt, users and /tmp.
fn base_rootfs(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in [
        "bin",
        "usr/bin",
        "usr/local/bin",
        "etc/ssl/certs",
        "tmp",
        "home/agent",
        "gt",
    ] {
        std::fs::create_dir_all(root.join(d)).ctx(|| format!("creating {d}"))?;
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .ctx(|| "chmod /tmp".to_string())?;
    let busybox = need("busybox", "busybox-static")?;
    copy_with_libs(&busybox, root, "/bin/busybox")?;
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .ctx(|| "running busybox --list".to_string())?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        let link = root.join("bin").join(applet);
        if !link.exists() && applet != "busybox" {
            std::os::unix::fs::symlink("busybox", &link).ctx(|| format!("linking {applet}"))?;
        }
    }
    copy_with_libs(&need("bash", "bash")?, root, "/bin/bash")?;
    copy_with_libs(&need("git", "git")?, root, "/usr/bin/git")?;
    let gt = std::env::current_exe().map_err(|e| Error::io("locating the gt binary", e))?;
    copy_with_libs(&gt, root, "/usr/local/bin/gt")?;
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if certs.exists() {
        std::fs::copy(certs, root.join("etc/ssl/certs/ca-certificates.crt"))
            .ctx(|| "copying the CA certificates".to_string())?;
    }
    std::fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/sh\nagent:x:{AGENT_UID}:{AGENT_UID}:agent:/home/agent:/bin/bash\n"),
    )
    .ctx(|| "writing /etc/passwd".to_string())?;
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nagent:x:{AGENT_UID}:\n"),
    )
    .ctx(|| "writing /etc/group".to_string())?;
    std::os::unix::fs::chown(root.join("home/agent"), Some(AGENT_UID), Some(AGENT_UID)).ok();
    Ok(())
}

/// Install `package@version` from npm into `dir` and find the native `binary` it ships
/// for this platform. Returns its path and the version installed.
fn npm_binary(dir: &Path, package: &str, version: &str, binary: &str) -> Result<(PathBuf, String)> {
    let npm = need("npm", "npm")?;
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let out = Command::new(&npm)
        .args(["install", "--prefix"])
        .arg(dir)
        .args(["--no-audit", "--no-fund", "--no-save", "--loglevel=error"])
        .arg(format!("{package}@{version}"))
        .output()
        .ctx(|| "running npm install".to_string())?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "npm install {package}@{version} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint("check that the npm registry is reachable (`npm view PACKAGE version`)"));
    }
    let manifest = dir.join("node_modules").join(package).join("package.json");
    let installed = std::fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(String::from))
        .ok_or_else(|| Error::Other(format!("{} has no version", manifest.display())))?;
    let found = find_elf(&dir.join("node_modules"), binary).ok_or_else(|| {
        Error::Other(format!(
            "{package}@{installed} has no native {binary} binary for linux x64 under {}",
            dir.display()
        ))
    })?;
    Ok((found, installed))
}

/// The first ELF executable named `name` under `dir` (the platform package's binary).
fn find_elf(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && e.file_name() == name && m.len() > 1 << 20 {
                let mut head = [0u8; 4];
                let elf = std::fs::File::open(&p)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                    .is_ok()
                    && &head == b"\x7fELF";
                if elf {
                    return Some(p);
                }
            }
        }
    }
    None
}
