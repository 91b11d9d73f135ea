"""The tensor-bundle format: bytes-level codecs and the bundle reader/writer.

Modules, bottom up: ``varint``, ``crc``, ``wire`` (protobuf wire format),
``messages`` (BundleHeader/BundleEntry/TensorShape/TensorSlice), ``table``
(the SSTable of ``.index`` files), ``ordered_code`` (slice keys), ``slices``
(slice specs), ``strings`` (DT_STRING layout), ``naming`` (file names); then
the only modules that touch files: ``bundle_writer``, ``bundle_reader``,
``merge``. The rules they cite (F-*) are written out in ``spec/format.md``.
"""
