import Foundation
import TernCheckpoints
import TernModel
import Testing

@Suite("Completeness")
struct CompletenessTests {
    /// The reason, or nil when complete.
    static func reason(_ completeness: Completeness) -> String? {
        if case .incomplete(let reason) = completeness { return reason }
        return nil
    }

    @Test("each in-directory marker, for its own format and for auto", arguments: [
        (JobSpec.CheckpointFormat.marker, "TERN_COMPLETE"),
        (.torchDCP, ".metadata"),
        (.orbax, "commit_success.txt"),
    ])
    func markers(format: JobSpec.CheckpointFormat, marker: String) async throws {
        try await withScratch { scratch in
            scratch.write("step/shard.bin", "data")
            #expect(Self.reason(Completeness.check(directory: scratch.at("step"), format: format))?.contains(marker) == true)
            #expect(Self.reason(Completeness.check(directory: scratch.at("step"), format: .auto)) != nil)

            scratch.write("step/" + marker, "")
            #expect(Completeness.check(directory: scratch.at("step"), format: format) == .complete(format: format, markers: [marker]))
            #expect(Completeness.check(directory: scratch.at("step"), format: .auto) == .complete(format: format, markers: [marker]))
            // Another format's marker does not count.
            for other in [JobSpec.CheckpointFormat.marker, .torchDCP, .orbax] where other != format {
                #expect(Self.reason(Completeness.check(directory: scratch.at("step"), format: other)) != nil)
            }
            let sealed = try await smallSealer.seal(directory: scratch.at("step"), format: format)
            #expect(sealed.format == format)
            #expect(sealed.manifest.files.first { $0.path == marker }?.role == .marker)
        }
    }

    @Test("a marker that is a directory does not count")
    func markerDirectory() async throws {
        await withScratch { scratch in
            scratch.makeDirectory("step/TERN_COMPLETE")
            #expect(Self.reason(Completeness.check(directory: scratch.at("step"), format: .marker)) != nil)
        }
    }

    @Test("auto prefers Tern's marker, then torch DCP, then Orbax")
    func autoOrder() async throws {
        await withScratch { scratch in
            scratch.write("step/.metadata", "")
            scratch.write("step/commit_success.txt", "")
            #expect(Completeness.check(directory: scratch.at("step"), format: .auto) == .complete(format: .torchDCP, markers: [".metadata"]))
            scratch.write("step/TERN_COMPLETE", "")
            #expect(Completeness.check(directory: scratch.at("step"), format: .auto) == .complete(format: .marker, markers: ["TERN_COMPLETE"]))
        }
    }

    @Test("Megatron: complete when the tracker is at or past the iteration")
    func megatron() async throws {
        await withScratch { scratch in
            scratch.write("iter_0000100/model_optim_rng.pt", "weights")
            let step = scratch.at("iter_0000100")
            #expect(Self.reason(Completeness.check(directory: step, format: .megatron))?.contains("latest_checkpointed_iteration.txt") == true)

            for (tracker, complete) in [("100", true), ("100\n", true), ("200", true), ("99", false), ("50\n", false), ("", false), ("1O0", false), ("release", false)] {
                scratch.write("latest_checkpointed_iteration.txt", tracker)
                let result = Completeness.check(directory: step, format: .megatron)
                #expect((result == .complete(format: .megatron, markers: [])) == complete, "tracker \(tracker.debugDescription): \(result)")
                #expect((Completeness.check(directory: step, format: .auto) == .complete(format: .megatron, markers: [])) == complete)
            }
            scratch.write("latest_checkpointed_iteration.txt", "99")
            #expect(Self.reason(Completeness.check(directory: step, format: .megatron))?.contains("newer and not finished") == true)
            let error = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: step) }
            #expect(error?.description.contains("newer and not finished") == true)

            // A trailing slash names the same directory.
            scratch.write("latest_checkpointed_iteration.txt", "100")
            #expect(Completeness.check(directory: step + "/", format: .megatron) == .complete(format: .megatron, markers: []))

            // `release` counts only for the release directory; other names are not iterations.
            scratch.write("release/model.pt", "w")
            scratch.write("latest_checkpointed_iteration.txt", "release")
            #expect(Completeness.check(directory: scratch.at("release"), format: .megatron) == .complete(format: .megatron, markers: []))
            scratch.write("latest_checkpointed_iteration.txt", "100")
            #expect(Self.reason(Completeness.check(directory: scratch.at("release"), format: .megatron))?.contains("not a Megatron iteration") == true)
        }
    }

    @Test("DeepSpeed: `latest` empty, half-written, naming a missing directory, this one, or a later one")
    func deepspeed() async throws {
        try await withScratch { scratch in
            scratch.write("global_step200/mp_rank_00_model_states.pt", "w")
            scratch.write("global_step300/mp_rank_00_model_states.pt", "w")
            let step = scratch.at("global_step200")
            #expect(Self.reason(Completeness.check(directory: step, format: .deepspeed))?.contains("no readable latest") == true)

            let cases: [(String, Bool, String)] = [
                ("", false, "names no checkpoint directory"),  // created, not yet written
                ("global_st", false, "names no checkpoint directory"),  // half-written
                ("global_step400", false, "names no checkpoint directory"),  // names a directory that is not there
                ("../global_step200", false, "names no checkpoint directory"),
                ("global_step200", true, ""),
                ("global_step200\n", true, ""),
                ("global_step300", true, ""),  // a later save finished, so this earlier one did
            ]
            for (text, complete, why) in cases {
                scratch.write("latest", text)
                let result = Completeness.check(directory: step, format: .deepspeed)
                if complete {
                    #expect(result == .complete(format: .deepspeed, markers: []), "latest \(text.debugDescription)")
                    #expect(Completeness.check(directory: step, format: .auto) == .complete(format: .deepspeed, markers: []))
                } else {
                    #expect(Self.reason(result)?.contains(why) == true, "latest \(text.debugDescription): \(result)")
                    #expect(Self.reason(Completeness.check(directory: step, format: .auto)) != nil)
                }
            }
            // `latest` naming an earlier step: the newer directory is not complete.
            scratch.write("latest", "global_step200")
            #expect(Self.reason(Completeness.check(directory: scratch.at("global_step300"), format: .deepspeed))?.contains("names global_step200") == true)

            scratch.write("latest", "global_st")
            let error = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: step, format: .deepspeed) }
            #expect(error?.description.contains("mid-write") == true)
            scratch.write("latest", "global_step200")
            let sealed = try await smallSealer.seal(directory: step, format: .deepspeed)
            #expect(sealed.format == .deepspeed)
            #expect(sealed.manifest.files.map(\.role) == [.data])
        }
    }

    @Test("auto with no signal at all says what it looked for")
    func autoNothing() async throws {
        await withScratch { scratch in
            scratch.write("step/shard.bin", "data")
            let reason = Self.reason(Completeness.check(directory: scratch.at("step"), format: .auto))
            for name in ["TERN_COMPLETE", ".metadata", "commit_success.txt", "latest_checkpointed_iteration.txt", "latest"] {
                #expect(reason?.contains(name) == true)
            }
            // A directory that does not exist is incomplete too, never sealed.
            #expect(Self.reason(Completeness.check(directory: scratch.at("nowhere"), format: .auto)) != nil)
        }
    }
}
