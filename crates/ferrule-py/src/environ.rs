//! The environ dict of one request (PEP 3333 "environ Variables").
//!
//! The CGI variables come from `ferrule_core::environ` (the rules live there, unit-tested);
//! this module only makes Python objects: every value is a native `str` decoded from the
//! request's bytes as latin-1 ("the server must decode the bytes as ISO-8859-1", PEP 3333
//! "Unicode Issues"), straight from the bytes with `PyUnicode_DecodeLatin1` (no Rust `String` in
//! between).
//!
//! The `wsgi.*` entries that never change for a thread (`wsgi.version` `(1, 0)`, `wsgi.errors`,
//! `wsgi.multithread` = more than one thread, `wsgi.multiprocess` from the configuration,
//! `wsgi.run_once` `False`, `wsgi.input_terminated` `True`, `wsgi.file_wrapper`) sit in a
//! template dict that each request copies (`dict.copy()` of a small dict is one C call). Keys are
//! interned once per thread; `HTTP_*` keys seen before come from a bounded cache.
//!
//! The template also holds every CGI key and `wsgi.url_scheme`/`wsgi.input` with `None`, which
//! each request overwrites (the two optional keys, `CONTENT_TYPE` and `CONTENT_LENGTH`, are
//! deleted when the request has none). With those 22 entries the template's table already has
//! room for 20 more, so the copy takes the table as it is and a request's `HTTP_*` keys go in
//! without the dict growing (a dict built key by key grew three times per request).

use std::collections::HashMap;
use std::os::raw::c_char;

use ferrule_core::environ::{cgi_variables, request_parts_forwarded, CgiKey, EnvKey};
use ferrule_core::exchange::ConnInfo;
use ferrule_core::forwarded::ForwardedView;
use ferrule_core::http1::RequestHead;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::Errors;
use crate::file_wrapper::FileWrapper;
use crate::input::Input;

/// How many distinct `HTTP_*` key strings a thread keeps interned. Real traffic uses a few
/// dozen header names; the bound stops a client inventing names from growing the cache.
const HTTP_KEY_CACHE: usize = 128;

/// Every bit of [`CgiKey::ALL`] set.
const ALL_CGI_KEYS: u32 = (1 << CgiKey::ALL.len()) - 1;

/// What `wsgi.multithread`/`wsgi.multiprocess` report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Concurrency {
    pub(crate) multithread: bool,
    pub(crate) multiprocess: bool,
}

/// Per-thread environ builder.
#[derive(Debug)]
pub(crate) struct EnvironBuilder {
    template: Py<PyDict>,
    cgi_keys: Vec<Py<PyString>>,
    http_keys: HashMap<Vec<u8>, Py<PyString>>,
    key_input: Py<PyString>,
    key_url_scheme: Py<PyString>,
    scheme_http: Py<PyString>,
    scheme_https: Py<PyString>,
    errors: Py<Errors>,
}

impl EnvironBuilder {
    pub(crate) fn new(py: Python<'_>, concurrency: Concurrency) -> PyResult<EnvironBuilder> {
        let errors = Py::new(py, Errors::default())?;
        let template = PyDict::new(py);
        template.set_item(PyString::intern(py, "wsgi.version"), (1, 0))?;
        template.set_item(PyString::intern(py, "wsgi.errors"), errors.bind(py))?;
        template.set_item(
            PyString::intern(py, "wsgi.multithread"),
            concurrency.multithread,
        )?;
        template.set_item(
            PyString::intern(py, "wsgi.multiprocess"),
            concurrency.multiprocess,
        )?;
        template.set_item(PyString::intern(py, "wsgi.run_once"), false)?;
        template.set_item(PyString::intern(py, "wsgi.input_terminated"), true)?;
        template.set_item(
            PyString::intern(py, "wsgi.file_wrapper"),
            py.get_type::<FileWrapper>(),
        )?;
        for key in CgiKey::ALL {
            template.set_item(PyString::intern(py, key.as_str()), py.None())?;
        }
        template.set_item(PyString::intern(py, "wsgi.url_scheme"), py.None())?;
        template.set_item(PyString::intern(py, "wsgi.input"), py.None())?;
        Ok(EnvironBuilder {
            template: template.unbind(),
            cgi_keys: CgiKey::ALL
                .iter()
                .map(|k| PyString::intern(py, k.as_str()).unbind())
                .collect(),
            http_keys: HashMap::new(),
            key_input: PyString::intern(py, "wsgi.input").unbind(),
            key_url_scheme: PyString::intern(py, "wsgi.url_scheme").unbind(),
            scheme_http: PyString::intern(py, "http").unbind(),
            scheme_https: PyString::intern(py, "https").unbind(),
            errors,
        })
    }

    /// This thread's `wsgi.errors`.
    pub(crate) fn errors(&self) -> &Py<Errors> {
        &self.errors
    }

    /// The environ for one request.
    pub(crate) fn build<'py>(
        &mut self,
        py: Python<'py>,
        head: &RequestHead,
        conn: &ConnInfo,
        forwarded: Option<&ForwardedView>,
        input: &Bound<'py, Input>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.template.bind(py).copy()?;
        // Bit `k` set: CGI key `k` got its value.
        let mut set: u32 = 0;
        // `--protocol uwsgi`: the front server's variables, not the server-side head.
        let (vars, https) = match forwarded.and_then(|f| f.uwsgi.as_deref()) {
            Some(uwsgi) => (uwsgi.cgi_variables(conn), uwsgi.scheme() == "https"),
            None => {
                let parts = request_parts_forwarded(head, conn, forwarded);
                let https = parts.scheme == "https";
                (cgi_variables(parts), https)
            }
        };
        for (key, value) in vars {
            let value = latin1(py, &value)?;
            match key {
                EnvKey::Cgi(k) => {
                    set |= 1 << k as u32;
                    env.set_item(self.cgi_keys[k as usize].bind(py), value)?;
                }
                EnvKey::Http(name) => {
                    let key = self.http_key(py, name)?;
                    env.set_item(key, value)?;
                }
                // Rare (TLS, forwarded https): interned on the spot.
                EnvKey::Other(name) => env.set_item(PyString::intern(py, name), value)?,
            }
        }
        let scheme = if https {
            &self.scheme_https
        } else {
            &self.scheme_http
        };
        env.set_item(self.key_url_scheme.bind(py), scheme.bind(py))?;
        env.set_item(self.key_input.bind(py), input)?;
        // A key the request has no value for (PEP 3333: CONTENT_TYPE and CONTENT_LENGTH "may be
        // empty or absent") is absent: the template's placeholders never reach the app.
        if set != ALL_CGI_KEYS {
            for (i, key) in self.cgi_keys.iter().enumerate() {
                if set & (1 << i) == 0 {
                    env.del_item(key.bind(py))?;
                }
            }
        }
        Ok(env)
    }

    fn http_key<'py>(&mut self, py: Python<'py>, name: Vec<u8>) -> PyResult<Bound<'py, PyString>> {
        if let Some(key) = self.http_keys.get(&name) {
            return Ok(key.bind(py).clone());
        }
        // The core builds these keys from token characters (ASCII); anything else is not cached.
        let Ok(text) = std::str::from_utf8(&name) else {
            return latin1(py, &name);
        };
        let key = PyString::intern(py, text);
        if self.http_keys.len() < HTTP_KEY_CACHE {
            self.http_keys.insert(name, key.clone().unbind());
        }
        Ok(key)
    }
}

/// Bytes to a Python `str`, one character per byte (latin-1).
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("value too long"))?;
    // SAFETY: the pointer and length describe `bytes`, valid for the call; a null `errors` means
    // "strict", and latin-1 decoding cannot fail except on memory exhaustion, which returns NULL
    // with an exception set, turned into `Err` by `from_owned_ptr_or_err`.
    unsafe {
        let ptr =
            ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast::<c_char>(), len, std::ptr::null());
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyString>())
    }
}
