//! Request header fields as both front ends hold them: the `http` crate's map (HTTP/2, `h2`)
//! and the HTTP/1 loop's parsed head. The static tier, the file mounts
//! and header forwarding read them through [`Fields`], so neither side builds the other's
//! representation.

/// A request's header fields, from the `http` crate's map (HTTP/2) or straight from a
/// parsed HTTP/1 head (the `h1` loop), so forwarding builds no map of its own. Names may be in any case.
pub trait Fields {
    /// Every field, in order.
    fn each<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s [u8]));

    /// Every value of `name` (lower case), in order.
    fn all(&self, name: &str) -> Vec<&[u8]>;
}

impl Fields for http::HeaderMap {
    fn each<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s [u8])) {
        for (n, v) in self.iter() {
            f(n.as_str(), v.as_bytes());
        }
    }

    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect()
    }
}

impl Fields for &[httparse::Header<'_>] {
    fn each<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s [u8])) {
        for h in self.iter() {
            f(h.name, h.value);
        }
    }

    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    }
}
