//! Small text helpers for headers and records.

/// Cuts `s` to at most `max` bytes on a character boundary (for headers and records).
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
