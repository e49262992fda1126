//! Small shared pieces: name validation, random ids, time, durable file writes.

use crate::error::{Error, IoContext, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names that become paths or container names: `[a-z0-9][a-z0-9_-]{0,39}`.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 40
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if ok {
        return Ok(());
    }
    let why = if bytes.is_empty() {
        "it is empty".to_string()
    } else if bytes.len() > 40 {
        format!("it is {} characters long (at most 40)", bytes.len())
    } else if name.contains('/') || name.contains("..") {
        "it contains a path separator or `..`".to_string()
    } else if name.chars().any(char::is_whitespace) {
        "it contains whitespace".to_string()
    } else if name.chars().any(|c| c.is_ascii_uppercase()) {
        "it contains upper-case letters".to_string()
    } else {
        "it must start with a-z or 0-9 and contain only a-z, 0-9, `_` and `-`".to_string()
    };
    Err(Error::usage(format!("invalid {kind} name {name:?}: {why}"))
        .with_hint("names match [a-z0-9][a-z0-9_-]{0,39}, e.g. `api` or `web-2`"))
}

/// `n` random characters from `[0-9a-z]`, from the kernel's CSPRNG.
pub fn random_base36(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = vec![0u8; n * 2];
    fill_random(&mut buf);
    buf.chunks(2)
        .map(|c| ALPHABET[(u16::from_le_bytes([c[0], c[1]]) % 36) as usize] as char)
        .collect()
}

/// A 128-bit random hex token (dispatch tokens, request ids).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn fill_random(buf: &mut [u8]) {
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
    if filled.is_err() {
        // No /dev/urandom (a very unusual sandbox): mix time, pid and a counter.
        // Uniqueness, not secrecy, is what callers without it still need.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut x = now_ms() as u64
            ^ ((std::process::id() as u64) << 32)
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

/// Milliseconds since the Unix epoch: the one clock of the state layer.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC, second precision: `2026-11-24T08:47:01Z`.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `2026-11-24`, `2026-11-24T08:00:00Z`, or Docker's `2026-11-24T08:00:00.123456789Z`
/// (UTC) → epoch milliseconds.
pub fn parse_utc_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let (time, frac) = time.split_once('.').unwrap_or((time, ""));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    let (y, m, day) = (d[0], d[1], d[2]);
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1000 + millis)
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A span for people, coarsest unit only: `45s`, `12m`, `3h`, `2d`.
pub fn format_span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The longest duration gt accepts anywhere (flags and gt.toml): ten years. Durations
/// end up as i64 milliseconds added to the clock; this keeps every sum far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `"30s"`, `"2m"`, `"1h"`, `"500ms"`, `"0s"`; None when it is not one, or is longer
/// than `MAX_DURATION`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    check_duration(s, Duration::ZERO).ok()
}

/// Parse a duration given for `min..=MAX_DURATION`. The error completes a sentence
/// that starts with the flag or key and its value: `--interval "0s" <error>`.
pub fn check_duration(s: &str, min: Duration) -> std::result::Result<Duration, String> {
    let not_one = || "is not a duration (use e.g. 500ms, 30s, 2m, 1h or 1d)".to_string();
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(not_one)?;
    let (num, unit) = t.split_at(split);
    let unit_ms: u128 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(not_one()),
    };
    if num.is_empty() {
        return Err(not_one());
    }
    // Digits only: a number too big for u128 is certainly too long.
    let ms = num
        .parse::<u128>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .filter(|ms| *ms <= MAX_DURATION.as_millis())
        .ok_or_else(|| "is longer than the maximum of 10 years (3650d)".to_string())?;
    let d = Duration::from_millis(ms as u64);
    if d < min {
        return Err(format!(
            "is shorter than the minimum of {}",
            format_duration(min)
        ));
    }
    Ok(d)
}

/// `100ms`, `1s`, `90s`: exact, for messages about limits.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A duration as i64 milliseconds, saturating (never wrapping to a negative span).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `"512m"`, `"4g"`, `"1024k"`, or plain bytes.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult: i64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

pub fn format_size(bytes: i64) -> String {
    for (unit, mult) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes % mult == 0 {
            return format!("{}{unit}", bytes / mult);
        }
    }
    bytes.to_string()
}

/// Write a file so that readers see the old content or the new, never a torn one:
/// temp name in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_mode(path, data, None)
}

/// `write_atomic`, the file created with exactly `mode` (not widened by the umask
/// either way) when given: a secret is never readable by others, not even for a moment.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: Option<u32>) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", random_hex(6)));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.unwrap_or(0o666))
            .open(&tmp)?;
        if let Some(m) = mode {
            // The umask may have taken bits from `mode`; never added any.
            f.set_permissions(std::fs::Permissions::from_mode(m))?;
        }
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .ctx(|| format!("writing {}", path.display()))
}

/// A host-only temporary directory `<parent>/.<prefix>-<random>`, removed (with what
/// it holds) when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new_in(parent: &Path, prefix: &str) -> Result<TempDir> {
        let p = parent.join(format!(".{prefix}-{}", random_hex(6)));
        std::fs::create_dir_all(&p).ctx(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shared libraries `bin` loads, dynamic loader included, as `ldd` names them (none
/// for a static binary).
pub fn shared_libs(bin: &Path) -> Result<Vec<std::path::PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(bin)
        .output()
        .ctx(|| format!("running ldd on {}", bin.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(std::path::PathBuf::from)
        .collect())
}

/// Whether an error's text says the host itself failed (its disk full, over quota, or
/// read-only): the host's fault, never an agent's or a change's. Only for text the host
/// wrote (an agent's words could say anything).
pub fn is_host_fault(text: &str) -> bool {
    [
        "No space left on device",
        "Disk quota exceeded",
        "Read-only file system",
    ]
    .iter()
    .any(|w| text.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_well() {
        assert_eq!(format_span(-5), "0s");
        assert_eq!(format_span(59_999), "59s");
        assert_eq!(format_span(60_000), "1m");
        assert_eq!(format_span(7_200_000), "2h");
        assert_eq!(format_span(3 * 86_400_000), "3d");
    }

    #[test]
    fn utc_times_parse() {
        assert_eq!(parse_utc_ms("1970-01-01"), Some(0));
        assert_eq!(
            parse_utc_ms("2026-11-24T08:47:01Z"),
            Some(1_795_510_021_000)
        );
        assert_eq!(
            parse_utc_ms("2026-11-24T08:47:01.123456789Z"),
            Some(1_795_510_021_123)
        );
        assert_eq!(
            parse_utc_ms("2026-11-24T08:47:01.5Z"),
            Some(1_795_510_021_500)
        );
        assert_eq!(parse_utc_ms("2026-11-24T08:47:01.x"), None);
        assert_eq!(parse_utc_ms("2026-13-01"), None);
        assert_eq!(parse_utc_ms("yesterday"), None);
    }

    #[test]
    fn names_follow_the_pattern() {
        for good in ["api", "a", "web-2", "x_y", &"a".repeat(40)] {
            assert!(validate_name("rig", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Api",
            "a/b",
            "..",
            "a b",
            "-a",
            "_a",
            &"a".repeat(41),
            "é",
        ] {
            assert!(validate_name("rig", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("ms"), None);
        assert_eq!(parse_size("4g"), Some(4 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("4x"), None);
        assert_eq!(format_size(4 << 30), "4g");
    }

    #[test]
    fn durations_are_range_checked_and_never_wrap() {
        let min = Duration::from_millis(100);
        assert_eq!(check_duration("100ms", min), Ok(Duration::from_millis(100)));
        assert!(
            check_duration("0s", min)
                .unwrap_err()
                .contains("minimum of 100ms")
        );
        assert!(check_duration("99ms", min).unwrap_err().contains("minimum"));
        for huge in [
            "99999999999999h",
            "10000000000000000s",
            "18446744073709551616ms",
            "999999999999999999999999999999999999999999d",
            "3651d",
        ] {
            let e = check_duration(huge, min).unwrap_err();
            assert!(e.contains("maximum of 10 years"), "{huge}: {e}");
            assert_eq!(parse_duration(huge), None, "{huge}");
        }
        assert_eq!(check_duration("3650d", min), Ok(MAX_DURATION));
        assert!(
            check_duration("soon", min)
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            check_duration("-5s", min)
                .unwrap_err()
                .contains("not a duration")
        );
        assert_eq!(millis(Duration::MAX), i64::MAX);
        assert_eq!(millis(MAX_DURATION), 315_360_000_000);
    }

    #[test]
    fn time_formats_as_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_795_510_021_000), "2026-11-24T08:47:01Z");
    }
}
