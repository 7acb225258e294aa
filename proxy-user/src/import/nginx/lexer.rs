//! nginx's configuration grammar, as tokens: words (quoted or not), `;`,
//! `{` and `}`, each with the line it starts on.
//!
//! Follows nginx's own `ngx_conf_read_token`: `#` starts a comment only where
//! a token could start; `"..."` and `'...'` take `\"`, `\'`, `\\`, `\n`,
//! `\r`, `\t` (any other backslash is kept as written, so regexes survive);
//! outside quotes a backslash keeps the next character in the word (`\;`);
//! `${var}` is one piece of a word, so its braces end nothing.

use super::ParseError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directive name or argument; `quoted` when written in quotes.
    Word {
        text: String,
        quoted: bool,
    },
    Semi,
    Open,
    Close,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub line: usize,
}

/// Splits `text` into tokens; an unterminated quote or `${` is an error at
/// the line it started on.
pub fn tokens(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' | '{' | '}' => {
                chars.next();
                let kind = match c {
                    ';' => Kind::Semi,
                    '{' => Kind::Open,
                    _ => Kind::Close,
                };
                out.push(Token { kind, line });
            }
            '"' | '\'' => {
                let start = line;
                chars.next();
                let mut word = String::new();
                loop {
                    let Some(ch) = chars.next() else {
                        return Err(ParseError::at(start, "unterminated quoted string"));
                    };
                    match ch {
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\'' | '\\')) => word.push(e),
                            Some('n') => word.push('\n'),
                            Some('r') => word.push('\r'),
                            Some('t') => word.push('\t'),
                            Some(other) => {
                                if other == '\n' {
                                    line += 1;
                                }
                                word.push('\\');
                                word.push(other);
                            }
                            None => {
                                return Err(ParseError::at(start, "unterminated quoted string"));
                            }
                        },
                        ch if ch == c => break,
                        ch => {
                            if ch == '\n' {
                                line += 1;
                            }
                            word.push(ch);
                        }
                    }
                }
                out.push(Token {
                    kind: Kind::Word {
                        text: word,
                        quoted: true,
                    },
                    line: start,
                });
            }
            _ => {
                let start = line;
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, ';' | '{' | '}') {
                        break;
                    }
                    chars.next();
                    match ch {
                        '\\' => {
                            // An escaped character is part of the word (`\;`, `\ `).
                            if let Some(e) = chars.next() {
                                if e == '\n' {
                                    line += 1;
                                }
                                word.push('\\');
                                word.push(e);
                            }
                        }
                        '$' if chars.peek() == Some(&'{') => {
                            word.push('$');
                            loop {
                                match chars.next() {
                                    Some('}') => {
                                        word.push('}');
                                        break;
                                    }
                                    Some(ch) if ch != '\n' && ch != ';' => word.push(ch),
                                    _ => {
                                        return Err(ParseError::at(
                                            start,
                                            "unterminated ${variable}",
                                        ));
                                    }
                                }
                            }
                        }
                        ch => word.push(ch),
                    }
                }
                out.push(Token {
                    kind: Kind::Word {
                        text: word,
                        quoted: false,
                    },
                    line: start,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokens(text)
            .unwrap()
            .into_iter()
            .map(|t| match t.kind {
                Kind::Word { text, quoted } => {
                    if quoted {
                        format!("\"{text}\"")
                    } else {
                        text
                    }
                }
                Kind::Semi => ";".into(),
                Kind::Open => "{".into(),
                Kind::Close => "}".into(),
            })
            .collect()
    }

    #[test]
    fn comments_quotes_escapes_and_variables() {
        assert_eq!(
            words("a b; # c { d\n e 'x;{}' \"q\\\"t\\n\" ${v}x;"),
            ["a", "b", ";", "e", "\"x;{}\"", "\"q\"t\n\"", "${v}x", ";"]
        );
        assert_eq!(
            words(r"rewrite ^/(.*)\;$ /$1;"),
            ["rewrite", r"^/(.*)\;$", "/$1", ";"]
        );
        assert_eq!(
            words("a#b;"),
            ["a#b", ";"],
            "# inside a word is not a comment"
        );
        assert_eq!(words(r#"x "\d{3}";"#), ["x", r#""\d{3}""#, ";"]);
    }

    #[test]
    fn lines_and_errors() {
        let t = tokens("a;\n\nb 'x\ny';\nc;").unwrap();
        let lines: Vec<usize> = t.iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 1, 3, 3, 4, 5, 5]);
        assert_eq!(tokens("a;\n'open").unwrap_err().line, 2);
        assert!(tokens("a ${b;").is_err());
    }
}
