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

/// An HTTP/1 head's field lines as (name, value), split once from the parsed head
/// ([`RawFields`](crate::serve::h1::request::RawFields)).
impl Fields for &[(&str, &[u8])] {
    fn each<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s [u8])) {
        for (name, value) in self.iter() {
            f(name, value);
        }
    }

    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect()
    }
}
