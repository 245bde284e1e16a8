//! Values: sealing and opening one value, the SQL functions protected columns and their views
//! call, and blind indexes.

pub mod blind_index;
pub mod columns;
pub mod sealing;
