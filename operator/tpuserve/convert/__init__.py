"""`tpuserve convert`: Meta Llama checkpoint → MaxText scanned + unscanned Orbax checkpoints, verified.

Modules: `layout` (where outputs live), `storage` (one small interface over local directories and `gs://`),
`source` (completeness check and staging), `maxtext` (the pinned release and its argv, pure), `expected`
(the parameter tree an architecture implies), `orbax_meta` (reads Orbax metadata without the weights),
`verify`, `manifest`, `summary` (termination message), `run` (the whole command), `cli`.

`tpuserve convert mirror` (a Hugging Face model into OUT/hf, verified): `hf_source` (hub or gs:// listing and
downloads, retries), `safetensors_header` (headers without the tensors), `hf_expected` (what the catalog
expects), `mirror_manifest`, `mirror` (the whole command).
"""
