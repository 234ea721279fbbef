//! Integers out of the wire's range, found in the JSON text.
//!
//! The wire's integers are those of `[-2^63, 2^64 - 1]` (`docs/protocol.md` §3.2).
//! serde_json reads an integer literal beyond them as the nearest float, which
//! would change the value quietly; a decoder that saw a float calls
//! [`check_integers`] on the text, and a literal out of range is a parse error.

/// Checks every integer literal of a JSON text (a number with no fraction and
/// no exponent) outside strings.
///
/// # Errors
///
/// Names the first literal outside `[-2^63, 2^64 - 1]`.
pub(crate) fn check_integers(json: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => i = after_string(json, i + 1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'0'..=b'9' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let literal = &json[start..i];
                if !literal.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) && !in_range(literal) {
                    return Err(format!(
                        "integer {} is outside the range the protocol carries, [-2^63, 2^64 - 1]",
                        String::from_utf8_lossy(&literal[..literal.len().min(64)])
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index just past the string whose first character is at `i`.
fn after_string(json: &[u8], mut i: usize) -> usize {
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn in_range(literal: &[u8]) -> bool {
    std::str::from_utf8(literal)
        .ok()
        .and_then(|text| text.parse::<i128>().ok())
        .is_some_and(|n| (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::check_integers;

    #[test]
    fn the_ends_of_the_range_pass_and_one_past_them_fails() {
        assert!(check_integers(b"[18446744073709551615,-9223372036854775808,1.5e300]").is_ok());
        let err = check_integers(b"[18446744073709551616]").unwrap_err();
        assert!(err.contains("18446744073709551616"), "{err}");
        assert!(check_integers(b"{\"a\":-9223372036854775809}").is_err());
        assert!(check_integers(b"[123456789012345678901234567890123456789012345]").is_err());
    }

    #[test]
    fn digits_inside_strings_are_not_numbers() {
        assert!(check_integers(br#"["99999999999999999999", "a\"99999999999999999999"]"#).is_ok());
    }
}
