"""Ruby values and job payloads: the codec between delayed_job's handler YAML and Python.

- ``payload``: handler YAML -> a job name and a payload (``StructJob``, ``ObjectJob``,
  ``MethodCall``, ``ActiveJobCall``), with ``DecodeLimits`` against hostile input.
- ``encode``: the reverse, for ``djmw.enqueue``: Python values -> YAML Ruby loads.
- ``values``: the Python types of Ruby values that have no plain equivalent
  (``Symbol``, ``RubyObject``, ``RecordRef``, ``GlobalId``, ...).
- ``_yaml``, ``_yaml_ruby``, ``_yaml_scalars``, ``_activejob``: the safe loader, its Ruby
  tag constructors, Ruby's scalar rules and ActiveJob's argument serializers.

This layer knows nothing of workers, middlewares or databases.
"""
