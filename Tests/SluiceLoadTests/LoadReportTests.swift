import Testing

@testable import SluiceLoad

@Suite("Load-test plan and report arithmetic")
struct LoadReportTests {
    @Test func slotsInAWindowCountBothEnds() {
        // burst 2 at 0, then every 100 ms: the densest 100 ms window holds 3 (0, 0, 100 000 µs).
        let slots: [Int64] = [0, 0, 100_000, 200_000, 300_000]
        #expect(LoadReport.maxInWindow(slots, length: 100_000) == 3)
        #expect(LoadReport.maxInWindow(slots, length: 99_999) == 2)
        #expect(LoadReport.maxInWindow(slots, length: 1_000_000) == 5)
        #expect(LoadReport.maxInWindow([], length: 1) == 0)
    }

    @Test func aKeySpecReadsEveryField() throws {
        let key = try LoadPlan.Key(parsing: "q:rate=20,period=2,burst=5,overflow=queue,max_queue_delay=5,max_depth=100,offered=90")
        #expect(key.name == "q" && key.rate == 20 && key.period == 2 && key.burst == 5 && key.overflow == "queue")
        #expect(key.maxQueueDelay == 5 && key.maxDepth == 100 && key.offered == 90)
        #expect(key.creationBody.contains(#""overflow":"queue""#) && key.creationBody.contains(#""max_queue_delay":5.0"#))
        for bad in ["", "a:rate", "a:rate=-1", "a:overflow=later", "a:colour=red", "a b"] {
            #expect(throws: LoadError.self) { try LoadPlan.Key(parsing: bad) }
        }
    }

    @Test func slotHeaderIsMicrosecondsExactly() {
        #expect(LoadGenerator.microseconds("1795219812.000042") == 1_795_219_812_000_042)
        #expect(LoadGenerator.microseconds("1795219812.5") == 1_795_219_812_500_000)
        #expect(LoadGenerator.microseconds("1795219812") == 1_795_219_812_000_000)
        #expect(LoadGenerator.microseconds("soon") == nil)
    }
}
