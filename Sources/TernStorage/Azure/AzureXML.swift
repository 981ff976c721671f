import Foundation

/// Reads the Blob service's XML answers: List Blobs pages and block lists.
enum AzureXML {
    struct ListedBlob: Equatable {
        var name: String
        var size: Int64
        /// Without quotes.
        var etag: String?
    }

    struct ListPage: Equatable {
        var blobs: [ListedBlob]
        /// Opaque; nil when this was the last page.
        var nextMarker: String?
    }

    struct Block: Equatable {
        /// The base64 block id, as sent.
        var id: String
        var size: Int64
    }

    struct BlockList: Equatable {
        var committed: [Block]
        var uncommitted: [Block]
    }

    /// A List Blobs answer (`EnumerationResults`); nil when it is not one.
    static func listPage(_ text: String) -> ListPage? {
        guard text.contains("<EnumerationResults") else { return nil }
        var blobs: [ListedBlob] = []
        for blob in XMLText.elements("Blob", in: text) {
            guard let name = elementText("Name", in: blob),
                  let properties = XMLText.elements("Properties", in: blob).first,
                  let sizeText = XMLText.first("Content-Length", in: properties), let size = Int64(sizeText) else { return nil }
            blobs.append(ListedBlob(name: name, size: size, etag: XMLText.first("Etag", in: properties).map(unquoted)))
        }
        let marker = XMLText.first("NextMarker", in: text).flatMap { $0.isEmpty ? nil : $0 }
        return ListPage(blobs: blobs, nextMarker: marker)
    }

    /// A Get Block List answer; nil when it is not one.
    static func blockList(_ text: String) -> BlockList? {
        guard text.contains("<BlockList") else { return nil }
        func blocks(_ section: String) -> [Block]? {
            guard let inner = XMLText.elements(section, in: text).first else { return [] }
            var result: [Block] = []
            for block in XMLText.elements("Block", in: inner) {
                guard let id = XMLText.first("Name", in: block), let sizeText = XMLText.first("Size", in: block),
                      let size = Int64(sizeText) else { return nil }
                result.append(Block(id: id, size: size))
            }
            return result
        }
        guard let committed = blocks("CommittedBlocks"), let uncommitted = blocks("UncommittedBlocks") else { return nil }
        return BlockList(committed: committed, uncommitted: uncommitted)
    }

    /// The Put Block List body: every block id as `<Latest>`, in order. Written the way the Azure
    /// SDKs write it, so the request (and its Content-Length) matches theirs byte for byte.
    static func blockListBody(_ ids: [String]) -> [UInt8] {
        Array(("<?xml version='1.0' encoding='utf-8'?>\n<BlockList>"
            + ids.map { "<Latest>\(XMLText.escape($0))</Latest>" }.joined() + "</BlockList>").utf8)
    }

    /// The text of the first `<name>` element, which may carry attributes. A name the service
    /// percent-encoded (`Encoded="true"`, for characters XML cannot hold) is decoded.
    static func elementText(_ name: String, in text: String) -> String? {
        var searchStart = text.startIndex
        while let open = text.range(of: "<\(name)", range: searchStart..<text.endIndex) {
            searchStart = open.upperBound
            guard let next = text[open.upperBound...].first, next == ">" || next == " " else { continue }
            guard let tagEnd = text[open.upperBound...].firstIndex(of: ">"),
                  let close = text.range(of: "</\(name)>", range: text.index(after: tagEnd)..<text.endIndex) else { return nil }
            let attributes = text[open.upperBound..<tagEnd]
            let inner = XMLText.decodeEntities(String(text[text.index(after: tagEnd)..<close.lowerBound]))
            if attributes.replacingOccurrences(of: " ", with: "").lowercased().contains("encoded=\"true\"") {
                return PercentEncoding.decode(inner)
            }
            return inner
        }
        return nil
    }

    /// An ETag without its surrounding quotes (headers quote it, list answers do not).
    static func unquoted(_ etag: String) -> String {
        etag.count >= 2 && etag.hasPrefix("\"") && etag.hasSuffix("\"") ? String(etag.dropFirst().dropLast()) : etag
    }
}
