//! CSS/JS reference rewriting with Django 6.1's exact patterns (spec §2.3–§2.5). Pure: no I/O.
