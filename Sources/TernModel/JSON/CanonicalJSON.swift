internal import Foundation
internal import TernCrypto

/// Writes any `Encodable` value as canonical JSON (see ``JSONValue/canonicalText``) and hashes it.
public enum CanonicalJSON {
    public static func value(of encodable: some Encodable) -> JSONValue {
        let encoder = JSONValueEncoder()
        do {
            try encodable.encode(to: encoder)
        } catch {
            // Only our own model types are encoded here, and none of them throws.
            preconditionFailure("canonical JSON encoding failed: \(error)")
        }
        return encoder.root.resolved()
    }

    public static func string(of encodable: some Encodable) -> String {
        value(of: encodable).canonicalText
    }

    /// Lower-case hex SHA-256 of the canonical text.
    public static func sha256Hex(of encodable: some Encodable) -> String {
        SHA256.hash(string(of: encodable)).hex
    }

    /// Lower-case hex SHA-256 of canonical text already written.
    public static func sha256Hex(ofText text: String) -> String {
        SHA256.hash(text).hex
    }

    /// Reads JSON text back into a model type.
    public static func decode<Value: Decodable>(_ type: Value.Type, from text: String) throws -> Value {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

/// A node of the tree being built: a reference so nested containers can fill it in later.
final class JSONBox {
    var value: JSONValue?
    var object: [String: JSONBox]?
    var array: [JSONBox]?

    init() {}

    func resolved() -> JSONValue {
        if let object { return .object(object.mapValues { $0.resolved() }) }
        if let array { return .array(array.map { $0.resolved() }) }
        return value ?? .null
    }
}

/// A minimal `Encoder` that builds a ``JSONValue`` instead of bytes.
final class JSONValueEncoder: Encoder {
    let root = JSONBox()
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] = [:]

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        Self.keyed(root, Key.self)
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer { Unkeyed(box: root.becomeArray()) }
    func singleValueContainer() -> any SingleValueEncodingContainer { Single(box: root) }

    static func keyed<Key: CodingKey>(_ box: JSONBox, _: Key.Type) -> KeyedEncodingContainer<Key> {
        if box.object == nil { box.object = [:] }
        return KeyedEncodingContainer(Keyed<Key>(box: box))
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let box: JSONBox
        var codingPath: [any CodingKey] = []

        func child(_ key: Key) -> JSONBox {
            let child = JSONBox()
            box.object![key.stringValue] = child
            return child
        }

        mutating func encodeNil(forKey key: Key) throws { child(key).value = .null }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try JSONValueEncoder.encode(value, into: child(key)) }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            JSONValueEncoder.keyed(child(key), NestedKey.self)
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { Unkeyed(box: child(key).becomeArray()) }
        mutating func superEncoder() -> any Encoder { Nested(box: child(Key(stringValue: "super")!)) }
        mutating func superEncoder(forKey key: Key) -> any Encoder { Nested(box: child(key)) }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let box: JSONBox
        var codingPath: [any CodingKey] = []
        var count: Int { box.array!.count }

        func next() -> JSONBox {
            let child = JSONBox()
            box.array!.append(child)
            return child
        }

        mutating func encodeNil() throws { next().value = .null }
        mutating func encode<T: Encodable>(_ value: T) throws { try JSONValueEncoder.encode(value, into: next()) }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            JSONValueEncoder.keyed(next(), NestedKey.self)
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { Unkeyed(box: next().becomeArray()) }
        mutating func superEncoder() -> any Encoder { Nested(box: next()) }
    }

    struct Single: SingleValueEncodingContainer {
        let box: JSONBox
        var codingPath: [any CodingKey] = []
        mutating func encodeNil() throws { box.value = .null }
        mutating func encode<T: Encodable>(_ value: T) throws { try JSONValueEncoder.encode(value, into: box) }
    }

    /// An encoder writing into one box, for values that encode themselves.
    final class Nested: Encoder {
        let box: JSONBox
        var codingPath: [any CodingKey] = []
        var userInfo: [CodingUserInfoKey: Any] = [:]
        init(box: JSONBox) { self.box = box }
        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> { JSONValueEncoder.keyed(box, Key.self) }
        func unkeyedContainer() -> any UnkeyedEncodingContainer { Unkeyed(box: box.becomeArray()) }
        func singleValueContainer() -> any SingleValueEncodingContainer { Single(box: box) }
    }

    /// Scalars become values directly; everything else encodes itself into the box.
    static func encode<T: Encodable>(_ value: T, into box: JSONBox) throws {
        switch value {
        case let value as String: box.value = .string(value)
        case let value as Bool: box.value = .bool(value)
        case let value as Int: box.value = .integer(Int64(value))
        case let value as Int64: box.value = .integer(value)
        case let value as Int32: box.value = .integer(Int64(value))
        case let value as UInt32: box.value = .integer(Int64(value))
        case let value as Double: box.value = .double(value)
        case let value as JSONValue: box.value = value
        case let value as UUID: box.value = .string(value.uuidString.lowercased())
        case let value as Date: box.value = .string(value.formatted(.iso8601))
        default: try value.encode(to: Nested(box: box))
        }
    }
}

extension JSONBox {
    func becomeArray() -> JSONBox {
        if array == nil { array = [] }
        return self
    }
}
