"""Batch runs of every input kind (images, dataset samples, videos, faces) on one road.

``run`` (one call: config + inputs + ``--out`` → summary) · ``plan`` (inputs, output names,
``--shard``) · ``manifest`` (``--out`` guard, lock, manifest, resume) · ``job`` (the Job
protocol, chunk and stream running, group writes) · ``jobs`` (the jobs and their frozen run
configs) · ``local`` / ``ray_engine`` (the two engines) · ``videofile`` (checked video I/O).
"""
