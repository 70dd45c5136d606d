//! `staticd serve`: the static tier and reverse proxy.
