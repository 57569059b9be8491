//! The CGI/WSGI variables of a request (PEP 3333 "environ Variables", CGI RFC 3875 §4.1), built
//! without Python so the rules can be unit-tested and fuzzed. SKELETON: the binding work fills
//! this in; `ferrule-py` only turns the pairs into Python `str`s.
