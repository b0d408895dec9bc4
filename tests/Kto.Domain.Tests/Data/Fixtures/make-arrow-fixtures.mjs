import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm/node';
import { writeFileSync } from 'fs';

const msg = new arrow.Struct([new arrow.Field('content', new arrow.Utf8(), true), new arrow.Field('role', new arrow.Utf8(), true)]);
const msgList = new arrow.List(new arrow.Field('item', msg, true));
function write(name, columns) {
  const table = new arrow.Table(columns);
  const wasmTable = pq.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
  writeFileSync(name, pq.writeParquet(wasmTable));
  console.log(name, table.schema.fields.map(f => `${f.name}: ${f.type}`).join('; '));
}
write('arrow-chat.parquet', {
  prompt: arrow.vectorFromArray([[{ content: 'Hi', role: 'user' }], [{ content: 'S', role: 'system' }, { content: 'Q', role: 'user' }]], msgList),
  completion: arrow.vectorFromArray([[{ content: 'Yo', role: 'assistant' }], [{ content: 'A', role: 'assistant' }]], msgList),
  label: arrow.vectorFromArray([true, false], new arrow.Bool()),
  id: arrow.vectorFromArray([10n, 11n], new arrow.Int64()),
});
write('arrow-tok.parquet', {
  prompt_ids: arrow.vectorFromArray([[1n, 2n], []], new arrow.List(new arrow.Field('item', new arrow.Int64(), true))),
  completion_ids: arrow.vectorFromArray([[3, 256], [4]], new arrow.List(new arrow.Field('item', new arrow.Int32(), true))),
  label: arrow.vectorFromArray([false, true], new arrow.Bool()),
});
write('arrow-paired.parquet', {
  prompt: arrow.vectorFromArray(['p', 'q'], new arrow.LargeUtf8()),
  chosen: arrow.vectorFromArray(['good', 'yes'], new arrow.Utf8()),
  rejected: arrow.vectorFromArray(['bad', 'no'], new arrow.Utf8()),
});
