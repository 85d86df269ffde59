//! placeholder until issue 6
