//! `rampart config import nginx FILE`: an nginx configuration translated
//! into a rampart one. This part reads nginx's language.

pub mod nginx;

pub use nginx::ParseError;
