//! The fakes behind the driver ports. Being written.
