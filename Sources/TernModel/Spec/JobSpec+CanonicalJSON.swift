/// The canonical JSON of a spec, written straight from its fields.
///
/// This gives exactly the bytes `CanonicalJSON.string(of: spec)` (the generic `Encodable` path)
/// gives, and `SpecFuzzTests` checks that on every example and on thousands of random specs. It
/// exists because `tern submit` normalises every spec it stores: the generic path builds a tree
/// of boxed dictionaries, sorts every object's keys and then prints it, several times the work of
/// appending the members in an order known when this is compiled. Keys are listed here in UTF-8
/// byte order; a new field of ``JobSpec`` (or of a type below) must be added here too, where its
/// name sorts, or the test fails.
extension JobSpec {
    /// The normalised spec as canonical JSON: sorted keys, no insignificant whitespace.
    public var canonicalJSON: String {
        var writer = CanonicalJSONWriter(reservingCapacity: 1_536)
        write(to: &writer)
        return writer.text
    }

    func write(to writer: inout CanonicalJSONWriter) {
        writer.beginObject()
        writer.key("checkpoint")
        checkpoint.write(to: &writer)
        writer.key("env")
        writer.stringMap(env)
        if let image {
            writer.key("image")
            writer.string(image)
        }
        writer.key("labels")
        writer.stringMap(labels)
        writer.key("name")
        writer.string(name)
        writer.key("nodes")
        writer.integer(nodes)
        writer.key("placement")
        placement.write(to: &writer)
        writer.key("priority")
        writer.integer(priority)
        writer.key("recovery")
        recovery.write(to: &writer)
        writer.key("resources")
        resources.write(to: &writer)
        writer.key("run")
        writer.string(run)
        writer.key("secrets")
        writer.strings(secrets)
        if let setup {
            writer.key("setup")
            writer.string(setup)
        }
        if let timeout {
            writer.key("timeout")
            writer.beginObject()
            writer.key("seconds")
            writer.integer(timeout.seconds)
            writer.endObject()
        }
        writer.key("workdir")
        writer.string(workdir)
        writer.endObject()
    }
}

extension JobSpec.Checkpoint {
    func write(to writer: inout CanonicalJSONWriter) {
        writer.beginObject()
        writer.key("dir")
        writer.string(dir)
        writer.key("format")
        writer.string(format.rawValue)
        writer.key("keep")
        writer.integer(keep)
        writer.key("replicate_to")
        writer.strings(replicateTo)
        writer.endObject()
    }
}

extension JobSpec.Placement {
    func write(to writer: inout CanonicalJSONWriter) {
        writer.beginObject()
        if let maxHourlyCost {
            writer.key("max_hourly_cost")
            writer.double(maxHourlyCost)
        }
        writer.key("strategy")
        writer.string(strategy.rawValue)
        writer.key("targets")
        writer.strings(targets)
        writer.endObject()
    }
}

extension JobSpec.Recovery {
    func write(to writer: inout CanonicalJSONWriter) {
        writer.beginObject()
        writer.key("max_preemptions")
        writer.integer(maxPreemptions)
        writer.key("max_restarts_on_errors")
        writer.integer(maxRestartsOnErrors)
        writer.key("on_preemption")
        writer.string(onPreemption.rawValue)
        writer.key("recover_on_exit_codes")
        writer.integers(recoverOnExitCodes)
        writer.endObject()
    }
}

extension JobSpec.Resources {
    func write(to writer: inout CanonicalJSONWriter) {
        writer.beginObject()
        if let accelerators {
            writer.key("accelerators")
            writer.beginObject()
            writer.key("mode")
            writer.string(accelerators.mode)
            writer.key("options")
            writer.beginArray()
            for request in accelerators.requests {
                writer.beginObject()
                writer.key("count")
                writer.integer(request.count)
                writer.key("name")
                writer.string(request.name)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        if let cpus {
            writer.key("cpus")
            Self.write(cpus, to: &writer) { writer, value in writer.integer(value) }
        }
        if let disk {
            writer.key("disk")
            Self.write(disk, to: &writer) { writer, size in Self.write(size, to: &writer) }
        }
        if let memory {
            writer.key("memory")
            Self.write(memory, to: &writer) { writer, size in Self.write(size, to: &writer) }
        }
        writer.key("spot")
        writer.string(spot.rawValue)
        writer.endObject()
    }

    private static func write<Value>(_ amount: ResourceAmount<Value>, to writer: inout CanonicalJSONWriter,
                                     value: (inout CanonicalJSONWriter, Value) -> Void) {
        writer.beginObject()
        writer.key("at_least")
        writer.bool(amount.atLeast)
        writer.key("value")
        value(&writer, amount.value)
        writer.endObject()
    }

    private static func write(_ size: ByteSize, to writer: inout CanonicalJSONWriter) {
        writer.beginObject()
        writer.key("bytes")
        writer.integer(size.bytes)
        writer.endObject()
    }
}
