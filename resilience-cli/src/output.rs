//! Formatting: times, sizes, states and aligned columns.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use resilience::ProcessState;

/// The lowercase name used in tables and JSON.
pub fn state_name(state: ProcessState) -> &'static str {
    match state {
        ProcessState::Initialized => "initialized",
        ProcessState::Running => "running",
        ProcessState::Paused => "paused",
        ProcessState::Completed => "completed",
        ProcessState::Failed => "failed",
    }
}

/// `text` with control characters escaped, so that an id cannot break a line or a terminal.
pub fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// "3 min ago", relative to `now`.
pub fn ago(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) if d.as_secs() < 1 => "just now".into(),
        Ok(d) => format!("{} ago", short_duration(d)),
        Err(e) => format!("in {}", short_duration(e.duration())),
    }
}

/// "45 s", "3 min", "2 h", "4 days".
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// "1m 05s", "2h 03m", "12s": a time left.
pub fn eta(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, s % 3600 / 60)
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-12-02T03:04:05.678Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, millis) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(e) => {
            let d = e.duration();
            let ms = d.as_millis() as i64;
            (-(ms + 999) / 1000, ((1000 - ms % 1000) % 1000) as u32)
        }
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-12-02 03:04:05 UTC`.
pub fn utc(t: SystemTime) -> String {
    let s = rfc3339(t);
    format!("{} {} UTC", &s[..10], &s[11..19])
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// "512 B", "1.2 KiB", "3.4 MiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// "45%" (floored, so that 99.9% is not shown as done).
pub fn percent(progress: f64) -> String {
    if progress.is_finite() {
        format!("{}%", (progress.clamp(0.0, 1.0) * 100.0).floor() as u32)
    } else {
        "-".into()
    }
}

/// The first line of an error text, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let multi = text.lines().nth(1).is_some();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else if multi {
        format!("{line} …")
    } else {
        line.to_owned()
    }
}

/// Rows of cells written as left-aligned columns separated by two spaces; the last column is
/// not padded.
pub struct Table {
    rows: Vec<Vec<String>>,
    widths: Vec<usize>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        let mut table = Table { rows: Vec::new(), widths: vec![0; header.len()] };
        table.push(header.iter().map(|h| (*h).to_owned()).collect());
        table
    }

    pub fn push(&mut self, row: Vec<String>) {
        for (w, cell) in self.widths.iter_mut().zip(&row) {
            *w = (*w).max(cell.chars().count());
        }
        self.rows.push(row);
    }

    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut line = String::new();
        for row in &self.rows {
            line.clear();
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i < last {
                    let pad = self.widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_180_645_678);
        assert_eq!(rfc3339(t), "2026-12-02T03:04:05.678Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(utc(t), "2026-12-02 03:04:05 UTC");
        let now = t + Duration::from_secs(185);
        assert_eq!(ago(t, now), "3 min ago");
        assert_eq!(ago(now, t), "in 3 min");
        assert_eq!(ago(t, t), "just now");
        assert_eq!(short_duration(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(eta(Duration::from_secs(65)), "1m 05s");
    }

    #[test]
    fn figures() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(percent(0.999), "99%");
        assert_eq!(one_line("a\nb", 10), "a …");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&["ID", "STATE"]);
        t.push(vec!["import-10".into(), "running".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ID         STATE\nimport-10  running\n");
    }
}
