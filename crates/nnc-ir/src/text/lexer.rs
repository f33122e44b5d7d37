//! The `.nnir` lexer: turns source text into tokens, each with its 1-based line and column.
//!
//! Tokens are produced one at a time ([`Lexer::next_token`]) so that the first error in the
//! file is the one reported, whether it is lexical or grammatical. Numbers are kept as source
//! text: the parser converts them once it knows the type they must have (an `f32` literal is
//! parsed as `f32` directly, so it reads back bit-exactly).

use crate::IrError;

/// What kind of token; the source text is in [`Token::text`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// `[A-Za-z_][A-Za-z0-9_.]*`: keywords, op and dtype names, symbols, attribute words.
    Ident,
    /// Decimal digits.
    Int,
    /// Digits with a `.` or an exponent: `1.0`, `2.`, `1e-5`, `3.5E+2`.
    Float,
    /// `%name` or `%"quoted name"`, holding the name without `%`, quotes or escapes.
    Value(String),
    /// A quoted string (a graph name that is not an identifier), unescaped.
    Str(String),
    /// One of `( ) [ ] { } , : = + - * / < >`.
    Punct(char),
    Eof,
}

/// A token and where it starts.
#[derive(Clone, Debug)]
pub(crate) struct Token<'a> {
    pub kind: Tok,
    /// The token's source text (empty at end of file).
    pub text: &'a str,
    pub line: usize,
    pub col: usize,
}

impl Token<'_> {
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Tok::Punct(c)
    }

    pub fn is_ident(&self, word: &str) -> bool {
        self.kind == Tok::Ident && self.text == word
    }

    /// The token as an error message's `found`: quoted source text, or `end of file`.
    pub fn describe(&self) -> String {
        if self.kind == Tok::Eof {
            "end of file".into()
        } else {
            quote_source(self.text)
        }
    }
}

/// Source text in backquotes for a message, shortened and with control characters escaped so
/// that a message stays on one line.
pub(crate) fn quote_source(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out = String::from("`");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

const PUNCTUATION: &str = "()[]{},:=+-*/<>";

/// True for the characters of a bare value name (`%x.1_a`) and of identifiers after the first.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    file: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    line: usize,
    col: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, file: &'a str) -> Lexer<'a> {
        Lexer { src, file, pos: 0, line: 1, col: 1 }
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|rest| rest.chars().next())
    }

    fn peek2(&self) -> Option<char> {
        let mut chars = self.src.get(self.pos..)?.chars();
        chars.next();
        chars.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn bump_while(&mut self, pred: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
    }

    fn error(&self, line: usize, col: usize, expected: &str, found: String) -> IrError {
        IrError::Parse { file: self.file.to_string(), line, col, expected: expected.to_string(), found }
    }

    /// The next character as an error's `found`.
    fn found_here(&self) -> String {
        match self.peek() {
            None => "end of file".into(),
            Some(c) => quote_source(c.encode_utf8(&mut [0; 4])),
        }
    }

    /// Skips whitespace and `#` comments.
    fn skip_trivia(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => self.bump_while(|c| c != '\n'),
                _ => return,
            }
        }
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, IrError> {
        self.skip_trivia();
        let (start, line, col) = (self.pos, self.line, self.col);
        let Some(c) = self.peek() else {
            return Ok(Token { kind: Tok::Eof, text: "", line, col });
        };
        let kind = if c.is_ascii_alphabetic() || c == '_' {
            self.bump_while(is_name_char);
            Tok::Ident
        } else if c.is_ascii_digit() {
            self.number()
        } else if c == '%' {
            self.bump();
            match self.peek() {
                Some('"') => Tok::Value(self.string()?),
                Some(c) if is_name_char(c) => {
                    let name_start = self.pos;
                    self.bump_while(is_name_char);
                    Tok::Value(self.src.get(name_start..self.pos).unwrap_or_default().to_string())
                }
                _ => {
                    return Err(self.error(
                        self.line,
                        self.col,
                        "a value name after `%` (letters, digits, `_`, `.`, or a quoted string)",
                        self.found_here(),
                    ))
                }
            }
        } else if c == '"' {
            Tok::Str(self.string()?)
        } else if PUNCTUATION.contains(c) {
            self.bump();
            Tok::Punct(c)
        } else {
            return Err(self.error(
                line,
                col,
                "a name, number, `%value`, string or one of `( ) [ ] { } , : = + - * / < >`",
                self.found_here(),
            ));
        };
        let text = self.src.get(start..self.pos).unwrap_or_default();
        Ok(Token { kind, text, line, col })
    }

    /// `digits ('.' digits*)? ([eE] [+-]? digits)?`; the exponent only if digits follow it, so
    /// `2e` is the integer `2` and the word `e` (which the parser then rejects).
    fn number(&mut self) -> Tok {
        self.bump_while(|c| c.is_ascii_digit());
        let mut float = false;
        if self.peek() == Some('.') {
            float = true;
            self.bump();
            self.bump_while(|c| c.is_ascii_digit());
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let exponent_follows = match self.peek2() {
                Some(c) if c.is_ascii_digit() => true,
                Some('+' | '-') => {
                    let rest = self.src.get(self.pos..).unwrap_or_default();
                    rest.chars().nth(2).is_some_and(|c| c.is_ascii_digit())
                }
                _ => false,
            };
            if exponent_follows {
                float = true;
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                self.bump_while(|c| c.is_ascii_digit());
            }
        }
        if float {
            Tok::Float
        } else {
            Tok::Int
        }
    }

    /// A quoted string starting at the current `"`: any character stands for itself except
    /// `\`, which must be followed by `"` or `\`.
    fn string(&mut self) -> Result<String, IrError> {
        let (line, col) = (self.line, self.col);
        self.bump(); // the opening quote
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(line, col, "`\"` to close this string", "end of file".into())),
                Some('"') => return Ok(out),
                Some('\\') => {
                    let (eline, ecol) = (self.line, self.col);
                    match self.peek() {
                        Some(c @ ('"' | '\\')) => {
                            self.bump();
                            out.push(c);
                        }
                        _ => {
                            let found = self.found_here();
                            return Err(self.error(eline, ecol, "`\"` or `\\` after `\\` in a string", found));
                        }
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_all(src: &str) -> Result<Vec<(Tok, String, usize, usize)>, IrError> {
        let mut lexer = Lexer::new(src, "t.nnir");
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token()?;
            let done = t.kind == Tok::Eof;
            out.push((t.kind, t.text.to_string(), t.line, t.col));
            if done {
                return Ok(out);
            }
        }
    }

    fn kinds(src: &str) -> Vec<Tok> {
        lex_all(src).unwrap().into_iter().map(|t| t.0).collect()
    }

    #[test]
    fn tokens_and_positions() {
        let toks = lex_all("graph g(%x: f32[n, 2]) {\n  # comment\n  return %x\n}").unwrap();
        let summary: Vec<(String, usize, usize)> = toks.iter().map(|t| (t.1.clone(), t.2, t.3)).collect();
        assert_eq!(summary[0], ("graph".into(), 1, 1));
        assert_eq!(summary[3], ("%x".into(), 1, 9));
        assert_eq!(toks[3].0, Tok::Value("x".into()));
        let ret = summary.iter().find(|t| t.0 == "return").unwrap();
        assert_eq!((ret.1, ret.2), (3, 3));
        assert_eq!(toks.last().unwrap().0, Tok::Eof);
        assert_eq!((toks.last().unwrap().2, toks.last().unwrap().3), (4, 2));
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("12 1.5 2. 1e-5 3E+2 7e"),
            vec![Tok::Int, Tok::Float, Tok::Float, Tok::Float, Tok::Float, Tok::Int, Tok::Ident, Tok::Eof]
        );
        let toks = lex_all("1e-5 2e+").unwrap();
        assert_eq!(toks[0].1, "1e-5");
        assert_eq!(toks[1].1, "2");
        assert_eq!(toks[2].1, "e");
        assert_eq!(toks[3].0, Tok::Punct('+'));
    }

    #[test]
    fn value_names_and_strings() {
        assert_eq!(
            kinds(r#"%a.b_1 %0 %"/layer1/Conv:0" %"q\"b\\s" "g h""#),
            vec![
                Tok::Value("a.b_1".into()),
                Tok::Value("0".into()),
                Tok::Value("/layer1/Conv:0".into()),
                Tok::Value("q\"b\\s".into()),
                Tok::Str("g h".into()),
                Tok::Eof
            ]
        );
        // `#` inside a string is not a comment; newlines are kept.
        assert_eq!(kinds("%\"a#b\nc\"")[0], Tok::Value("a#b\nc".into()));
    }

    fn parse_err(src: &str) -> (usize, usize, String, String) {
        match lex_all(src).unwrap_err() {
            IrError::Parse { line, col, expected, found, .. } => (line, col, expected, found),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn errors() {
        let (line, col, expected, found) = parse_err("graph g(\n  $");
        assert_eq!((line, col), (2, 3));
        assert!(expected.contains("a name, number"), "{expected}");
        assert_eq!(found, "`$`");

        let (line, col, expected, found) = parse_err("x %\"abc");
        assert_eq!((line, col, found.as_str()), (1, 4, "end of file"));
        assert!(expected.contains("close this string"));

        let (line, col, expected, found) = parse_err(r#"%"a\n""#);
        assert_eq!((line, col, found.as_str()), (1, 5, "`n`"));
        assert!(expected.contains("after `\\`"));

        let (line, col, expected, found) = parse_err("% x");
        assert_eq!((line, col, found.as_str()), (1, 2, "` `"));
        assert!(expected.contains("value name after `%`"));
        assert_eq!(parse_err("%").3, "end of file");
    }

    #[test]
    fn found_text_is_short_and_single_line() {
        assert_eq!(quote_source("a\nb"), "`a\\nb`");
        let long = "x".repeat(100);
        assert_eq!(quote_source(&long), format!("`{}...`", "x".repeat(40)));
    }
}
