// KafkaJS clients the e2e tests (kafkajs_test.go) run against a real Weir
// broker, each with KafkaJS's defaults except where a mode says. Every
// mode prints one JSON object on stdout when it is done; KafkaJS's own
// log goes to stderr. The Go tests check the delivery guarantees.
//
//   node clients.js idempotent BROKER TOPIC N
//   node clients.js txn BROKER TOPIC
//   node clients.js read BROKER TOPIC GROUP LAST
//   node clients.js ctp BROKER IN OUT GROUP N
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const [mode, broker, ...args] = process.argv.slice(2)

const kafka = new Kafka({
  clientId: 'weir-e2e-' + mode,
  brokers: [broker],
  // Quick retries keep the tests short; how many stays KafkaJS's concern.
  retry: { initialRetryTime: 50, retries: 10 },
  logLevel: logLevel.WARN,
  logCreator: () => ({ namespace, level, log }) => {
    process.stderr.write(JSON.stringify({ level, namespace, ...log }) + '\n')
  },
})

const done = (result) => process.stdout.write(JSON.stringify(result) + '\n')

// idempotent sends N records one at a time with the idempotent producer.
async function idempotent(topic, n) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  for (let i = 0; i < n; i++) {
    await producer.send({ topic, acks: -1, messages: [{ value: String(i) }] })
  }
  await producer.disconnect()
  done({ sent: n })
}

// txn writes five transactions of five records, committing the first,
// third and fifth and aborting the others.
async function txn(topic) {
  const producer = kafka.producer({ transactionalId: 'kafkajs-txn', idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const committed = []
  for (const [round, commit] of [true, false, true, false, true].entries()) {
    const t = await producer.transaction()
    const values = [0, 1, 2, 3, 4].map((i) => `r${round}-${i}-${commit}`)
    await t.send({ topic, messages: values.map((value) => ({ value })) })
    if (commit) {
      await t.commit()
      committed.push(...values)
    } else {
      await t.abort()
    }
  }
  await producer.disconnect()
  done({ committed })
}

// read consumes TOPIC from the beginning in GROUP with KafkaJS's default
// isolation (read_committed) until it has seen LAST.
async function read(topic, group, last) {
  const consumer = kafka.consumer({ groupId: group })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error))
    consumer.run({
      eachMessage: async ({ message }) => {
        const v = message.value.toString()
        values.push(v)
        if (v === last) resolve()
      },
    })
  })
  await consumer.disconnect()
  done({ values })
}

// ctp is consume-transform-produce: a member of GROUP reads IN and, for
// each record, writes its transformation to OUT and the record's offset
// (sendOffsets) in one transaction, until N transactions have committed.
// The first record's first attempt is aborted, then done again.
async function ctp(input, output, group, n) {
  const producer = kafka.producer({ transactionalId: 'kafkajs-ctp', idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const consumer = kafka.consumer({ groupId: group })
  await consumer.connect()
  await consumer.subscribe({ topics: [input], fromBeginning: true })
  let committed = 0
  let aborted = 0
  await new Promise((resolve, reject) => {
    consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error))
    consumer.run({
      autoCommit: false, // the transactions commit the offsets
      eachMessage: async ({ topic, partition, message }) => {
        const attempt = async (value, commit) => {
          const t = await producer.transaction()
          try {
            await t.send({ topic: output, messages: [{ value }] })
            await t.sendOffsets({
              consumerGroupId: group,
              topics: [{ topic, partitions: [{ partition, offset: (BigInt(message.offset) + 1n).toString() }] }],
            })
            await (commit ? t.commit() : t.abort())
          } catch (e) {
            await t.abort().catch(() => {})
            reject(e)
            throw e
          }
        }
        const v = message.value.toString()
        if (aborted === 0) {
          await attempt('aborted-' + v, false)
          aborted++
        }
        await attempt('x' + v, true)
        if (++committed === n) resolve()
      },
    })
  })
  await consumer.disconnect()
  await producer.disconnect()
  done({ committed, aborted })
}

const modes = {
  idempotent: () => idempotent(args[0], Number(args[1])),
  txn: () => txn(args[0]),
  read: () => read(args[0], args[1], args[2]),
  ctp: () => ctp(args[0], args[1], args[2], Number(args[3])),
}

if (!modes[mode]) {
  process.stderr.write(`unknown mode ${mode}\n`)
  process.exit(2)
}
modes[mode]().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${mode} failed: ${e.stack || e}\n`)
    process.exit(1)
  },
)
