//! Applying a role under a root: placeholder, filled below.
