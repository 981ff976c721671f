/// What a ranged read needs before its first byte: the object's facts now, and the range checked
/// against its size. The stores then pin the read to `version` (S3 `If-Match`, GCS `generation=`,
/// Azure `If-Match`), so a read that resumes after a broken connection never mixes bytes of two
/// versions of an object.
struct PinnedRead {
    let info: ObjectInfo
    let range: Range<Int64>
    let version: String

    /// nil when there is nothing to read (an empty range); throws when there is no such object,
    /// the range lies outside it, or the store gave no version.
    /// - Parameters:
    ///   - noun: the store's word for an object, for messages ("object", "blob").
    ///   - versionName: the store's name for the version ("ETag", "generation").
    static func prepare(
        _ store: some BlobStore, key: String, range: Range<Int64>?, noun: String, versionName: String, storeName: String
    ) async throws(StoreError) -> (info: ObjectInfo, read: PinnedRead?) {
        guard let info = try await store.head(key) else {
            throw StoreError(.notFound, store: store.url.description, key: key, status: 404, message: "no such \(noun)")
        }
        let wanted = range ?? 0..<info.size
        guard wanted.lowerBound >= 0, wanted.upperBound <= info.size else {
            throw StoreError(.rejected, store: store.url.description, key: key, message: "range \(wanted) is outside the \(noun)'s \(info.size) bytes")
        }
        if wanted.isEmpty { return (info, nil) }
        guard let version = info.version else {
            throw StoreError(.rejected, store: store.url.description, key: key, message: "\(storeName) described the \(noun) without a\(versionName.first.map { "AEIOU".contains($0) } == true ? "n" : "") \(versionName)")
        }
        return (info, PinnedRead(info: info, range: wanted, version: version))
    }
}
