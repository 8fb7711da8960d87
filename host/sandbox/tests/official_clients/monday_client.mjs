// Drives the monday.com emulator with monday's official client (@mondaydotcomorg/api),
// unmodified: its built-in operations (which use GraphQL fragments), paged items_page and
// next_items_page, mutations with JSON column values, and an application error.
// Prints one JSON object; the Rust test asserts on it.
import monday from "@mondaydotcomorg/api";

const { ApiClient, ClientError } = monday;

const [base, token, boardId] = process.argv.slice(2);
const client = new ApiClient({ token, endpoint: `${base}/v2` });
const out = {};

const me = await client.operations.getMeOp();
out.me = me.me.name;

const ids = [];
let page = await client.request(`query ($b: [ID!]) { boards(ids: $b) { items_page(limit: 4) { cursor items { id name } } } }`, { b: [boardId] });
let p = page.boards[0].items_page;
ids.push(...p.items.map((i) => i.id));
while (p.cursor) {
  const next = await client.request(`query ($c: String!) { next_items_page(cursor: $c, limit: 4) { cursor items { id } } }`, { c: p.cursor });
  p = next.next_items_page;
  ids.push(...p.items.map((i) => i.id));
}
out.paged = ids.length;

const created = await client.operations.createItemOp({ boardId, groupId: "topics", itemName: "From the official client" });
out.created = created.create_item.name;
const itemId = created.create_item.id;
await client.operations.changeSimpleColumnValueOp({ boardId, itemId, columnId: "deal_value", value: "77" });
const changed = await client.operations.changeMultipleColumnValuesOp({ boardId, itemId, columnValues: JSON.stringify({ status: { label: "Proposal" } }) });
out.values = Object.fromEntries(changed.change_multiple_column_values.column_values.map((c) => [c.id, c.value]));

const board = await client.operations.getBoardItemsOp({ ids: [boardId] });
out.board_page = board.boards[0].items_page.items.length;

try {
  await client.request(`mutation { change_simple_column_value(board_id: ${boardId}, item_id: ${itemId}, column_id: "nope", value: "x") { id } }`);
  out.error_code = null;
} catch (e) {
  out.error_code = e instanceof ClientError ? e.response.errors[0].extensions.code : String(e);
}

console.log(JSON.stringify(out));
