//! Support for the code the macros generate. Not a public API.
