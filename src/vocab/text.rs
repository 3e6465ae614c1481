//! Small text helpers every layer uses: hex digests and the `*`/`?` globs of price and
//! route patterns.

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    // A table, not `write!` per byte: this runs for the prompt hash of every request, and the
    // formatter cost ~8k instructions per 32-byte digest.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Glob match with `*` (any run) and `?` (one character), over characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // Model names are ASCII: match bytes without allocating (this runs for every price and
    // route pattern on every request). `?` is one character, so other text goes by chars.
    if pattern.is_ascii() && text.is_ascii() {
        glob(pattern.as_bytes(), text.as_bytes())
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        glob(&p, &t)
    }
}

/// `*` and `?` matching with one backtrack point (the last `*`): linear in practice.
fn glob<T: Copy + PartialEq + From<u8>>(p: &[T], t: &[T]) -> bool {
    let (star_c, any_c) = (T::from(b'*'), T::from(b'?'));
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_c || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_c {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == star_c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn globs() {
        assert!(glob_match("gpt-4o*", "gpt-4o-mini"));
        assert!(glob_match("*", ""));
        assert!(glob_match("llama-?-*b", "llama-3-70b"));
        assert!(!glob_match("gpt-4o", "gpt-4o-mini"));
        assert!(!glob_match("a*b", "acd"));
        assert!(glob_match("*mini*", "gpt-4o-mini-2024"));
        // Non-ASCII text: `?` is one character, not one byte.
        assert!(glob_match("modèle-?", "modèle-é"));
        assert!(!glob_match("modele-?", "modèle-é"));
        assert!(glob_match("*-é", "modèle-é"));
    }
}
