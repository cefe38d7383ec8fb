"""Plain Python values for the Ruby things found inside delayed_job handlers.

``djmw.ruby.payload`` decodes handler YAML into these and ``djmw.ruby.encode`` writes them back.
None of them ever runs Ruby code or loads a model: they only carry names and data, so
perform functions can inspect them and decide what to do.

How the other Ruby values map (decoding and encoding agree):

========================================  ==============================================
Ruby                                      Python
========================================  ==============================================
nil / true / false / Integer / Float      None / bool / int / float
String (UTF-8) / binary String            str / bytes
Symbol (``:name``)                        :class:`Symbol` (never a str)
Array / Hash                              list / dict (keys keep their types)
HashWithIndifferentAccess, hash-with-ivars  dict
Set                                       frozenset
BigDecimal / Rational / Complex           decimal.Decimal / fractions.Fraction / complex
Time / DateTime / TimeWithZone            aware datetime in UTC (microsecond precision)
Date                                      datetime.date
ActiveSupport::Duration                   datetime.timedelta
Range / Regexp                            :class:`RubyRange` / :class:`RubyRegexp`
Class or Module                           :class:`RubyModule`
Active Record object (any YAML format)    :class:`RecordRef`
ActiveJob GlobalID argument               :class:`GlobalId`
ActiveJob keyword-argument Hash           :class:`KeywordArgs`
any other object, Struct, Exception       :class:`RubyObject`
========================================  ==============================================
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs


@attrs.frozen(repr=False)
class Symbol:
    """A Ruby Symbol such as ``:force``, kept distinct from the string ``"force"``.

    Ruby code tells ``{force: true}`` from ``{"force" => true}`` and ``method_name: :perform``
    from ``"perform"``, so djmw never turns a Symbol into a str. It is not a str subclass:
    ``Symbol("a") != "a"``. It is hashable, so it can be a dict key.

    Attributes:
        name: the symbol's text without the leading colon.
    """

    name: str

    def __repr__(self) -> str:
        return f":{self.name}"


@attrs.frozen
class RubyModule:
    """A reference to a Ruby class or module by name (``!ruby/class 'User'``, ``!ruby/module``).

    djmw cannot tell a class from a module once it is written as YAML (Ruby resolves both
    with the same constant lookup), so one type covers both.

    Attributes:
        name: the constant path, e.g. ``"User"`` or ``"Reports::Nightly"``.
    """

    name: str


@attrs.frozen
class RecordRef:
    """An Active Record object stored in a handler, reduced to what Ruby reloads it by.

    delayed_job re-fetches every record from the database by primary key and discards the
    attribute values stored in the YAML, so djmw keeps only the class and the key. djmw
    never loads Ruby models; look the row up yourself if the job needs it.

    Attributes:
        class_name: the model class, e.g. ``"User"``.
        primary_key: the value of the ``id`` attribute (``_id`` for Mongoid), or None when
            the stored attributes have no ``id`` (models with a custom primary key name).
    """

    class_name: str
    primary_key: object


@attrs.frozen
class GlobalId:
    """An ActiveJob ``_aj_globalid`` argument: a record reference as a GlobalID URI.

    Attributes:
        uri: the whole URI, e.g. ``"gid://app/User/1"``.
        app: the application name from the URI.
        model: the model class name, e.g. ``"User"`` or ``"Admin::User"``.
        model_id: the record id as text (URL-decoded; composite keys keep their ``/``).
    """

    uri: str
    app: str
    model: str
    model_id: str


@attrs.frozen
class RubyObject:
    """A Ruby object of a class djmw does not map to a Python type; inspectable, never built.

    Used for ``!ruby/object:Name``, ``!ruby/struct:Name``, ``!ruby/exception:Name``,
    ``!ruby/data:Name`` and ``!ruby/marshalable:Name`` values found *inside* a handler, and
    for ActiveJob arguments written by serializers djmw does not know.

    It is hashable even when its fields hold lists or dicts: the hash looks only at the
    class name and kind (equal objects still hash equally).

    Attributes:
        class_name: the Ruby class name (``"Object"`` when the tag names none).
        fields: instance variables (without ``@``), struct members, or serializer fields.
        kind: which Ruby tag family it came from: ``"object"``, ``"struct"``,
            ``"exception"``, ``"data"``, ``"marshalable"``, ``"scalar"`` (a class tag on a
            plain value, whose text is in ``fields["value"]``) or ``"serialized"`` (an
            unknown ActiveJob serializer).
    """

    class_name: str
    fields: Mapping[str, object] = attrs.field(factory=dict, hash=False)
    kind: str = "object"


@attrs.frozen
class RubyRange:
    """A Ruby Range such as ``1..3`` or ``1...3``.

    Attributes:
        begin: the first value (None for a beginless range).
        end: the last value (None for an endless range).
        exclusive: True for ``...`` ranges, which exclude ``end``.
    """

    begin: object
    end: object
    exclusive: bool = False


@attrs.frozen
class RubyRegexp:
    """A Ruby Regexp such as ``/ab+c/i``; not compiled, as Ruby syntax differs from ``re``.

    Attributes:
        source: the pattern between the slashes.
        options: the option letters after the closing slash (``i``, ``m``, ``x``, ``n``).
    """

    source: str
    options: str = ""


class KeywordArgs(dict[str, object]):
    """The keyword arguments of an ActiveJob ``perform`` call (a ``_aj_ruby2_keywords`` Hash).

    A dict subclass, so ``perform(*positional, **kwargs)`` works directly; keys are the
    keyword names as plain str (they are Symbols in Ruby). ActiveJob keeps them as the last
    element of ``ActiveJobCall.arguments``; ``djmw.ruby.encode.active_job`` writes one back with
    the ``_aj_ruby2_keywords`` marker. It compares equal to a dict with the same items;
    check ``isinstance(value, KeywordArgs)`` to tell the two apart.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"KeywordArgs({dict.__repr__(self)})"
