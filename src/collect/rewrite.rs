//! TEMP stub of the API; the real module lands from the rewrite branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Css,
    Js,
}
pub fn kind_of(rel: &str) -> Option<Kind> {
    if rel.ends_with(".css") {
        Some(Kind::Css)
    } else if rel.ends_with(".js") {
        Some(Kind::Js)
    } else {
        None
    }
}
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub static_url: &'a str,
    pub js_modules: bool,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub target: String,
    pub line: usize,
    pub matched: String,
    pub line_text: String,
}
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{name}: escapes")]
    Escapes { name: String, reference: Reference },
}
pub fn references(
    _name: &str,
    _kind: Kind,
    _text: &str,
    _opts: &Options,
) -> Result<Vec<Reference>, Error> {
    Ok(vec![])
}
pub fn rewrite(
    _name: &str,
    _kind: Kind,
    text: &str,
    _opts: &Options,
    _resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Error> {
    Ok(text.to_string())
}
