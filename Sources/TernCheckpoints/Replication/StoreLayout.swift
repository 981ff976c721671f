/// Where a checkpoint's pieces live on a store (under the store URL's prefix).
///
/// - `blobs/<root>`: each file's bytes, addressed by the file's root hash. Two files with equal
///   bytes, in one checkpoint or in many (frozen base weights of a LoRA run), are one object, so a
///   file already on the store is never sent again.
/// - `manifests/<id>.json` and `manifests/<id>.chunks`: the manifest (whose SHA-256 is `<id>`) and
///   its chunk sidecar (whose SHA-256 the manifest holds). Both check themselves on read.
/// - `checkpoints/<id>/_TERN_COMMITTED`: the commit marker, created with a create-only
///   precondition after everything else is stored and verified. Its bytes are the id. Readers ignore
///   a checkpoint without it; garbage collection deletes it first.
public enum StoreLayout {
    /// Where the data objects live; every blob key starts with it.
    public static let blobPrefix = "blobs/"
    public static func blob(root: String) -> String { blobPrefix + root }
    public static func manifest(id: String) -> String { "manifests/\(id).json" }
    public static func sidecar(id: String) -> String { "manifests/\(id).chunks" }
    public static func commitMarker(id: String) -> String { "checkpoints/\(id)/_TERN_COMMITTED" }
    public static let commitMarkerPrefix = "checkpoints/"
}
