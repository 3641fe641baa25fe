//! Dynamic DNS: placeholder, filled below.
