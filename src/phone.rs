//! Phone numbers and the time zones they imply.
