//! `staticfiles.json`, read and written byte-for-byte like Django 6.1.
