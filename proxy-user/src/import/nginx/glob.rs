//! The part of glob(3) nginx's `include` uses: `*`, `?` and `[...]` in any
//! path component, matches sorted, hidden files only for a pattern that
//! starts with `.`.

use std::path::{Component, Path, PathBuf};

pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Every existing path `pattern` matches, sorted; a path without wildcards
/// is returned as it is if it exists.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let wild = matches!(comp, Component::Normal(_)) && is_pattern(&part);
        let mut next = Vec::new();
        for base in &found {
            if !wild {
                next.push(base.join(comp.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| (!n.starts_with('.') || part.starts_with('.')) && matches(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.exists());
    found
}

/// Does `name` match the pattern `pat` (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`)?
pub fn matches(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| match_from(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(end) = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                return n.first() == Some(&'[') && match_from(&p[1..], &n[1..]);
            };
            let Some(&c) = n.first() else { return false };
            let mut set = &p[1..end];
            let negate = matches!(set.first(), Some('!' | '^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_from(&p[end + 1..], &n[1..])
        }
        Some(&c) => n.first() == Some(&c) && match_from(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns() {
        assert!(matches("*.conf", "a.conf"));
        assert!(!matches("*.conf", "a.conf.bak"));
        assert!(matches("site-?.conf", "site-1.conf"));
        assert!(matches("[a-c]*", "by"));
        assert!(!matches("[!a-c]*", "by"));
        assert!(matches("*", ""));
    }
}
