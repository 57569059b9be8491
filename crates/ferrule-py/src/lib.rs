//! The `_ferrule` extension module. SKELETON: the binding work fills this in.
use pyo3::prelude::*;

#[pymodule]
fn _ferrule(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
