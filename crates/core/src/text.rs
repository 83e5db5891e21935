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

/// Whether JSON text holds the escape `\u0000` (a NUL character), which
/// PostgreSQL cannot store in `text` or `jsonb`. An escaped backslash followed
/// by `u0000` is not one.
pub fn has_nul_escape(json: &[u8]) -> bool {
    // `u0000` is rare: find it with memchr's SIMD search, then count the
    // backslashes before it (an odd count makes it an escape).
    memchr::memmem::find_iter(json, b"u0000")
        .any(|at| json[..at].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1)
}

#[cfg(test)]
mod nul_tests {
    use super::has_nul_escape;

    #[test]
    fn finds_the_nul_escape_only() {
        assert!(has_nul_escape(br#"{"a":"x\u0000"}"#));
        assert!(has_nul_escape(br#"{"a":"\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"a":"\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"a":"\u00e9 u0000"}"#));
        assert!(has_nul_escape(br#"\u0000"#));
        assert!(!has_nul_escape(br#"u0000"#));
        assert!(has_nul_escape(br#"{"a":"u0000\\\\\u0000"}"#));
        assert!(!has_nul_escape(b""));
    }
}
