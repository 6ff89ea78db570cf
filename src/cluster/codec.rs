//! Extension codecs: how gdo's logical nodes and operators travel between the client,
//! the scheduler and the executors. Each wraps Ballista's own codec (shuffle readers
//! and writers, file formats, table providers go through it) and adds gdo's nodes;
//! the first byte says which: 0 Ballista's, 1 `GoalSelect`, 2 `UniSample`,
//! 3 `ShippedGoalQuery`. A node's parameters travel as JSON; its inputs travel as
//! DataFusion's plan nodes. Functions travel by name and are found in the receiving
//! process's registry, which carries every gdo function.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::common::{Result, TableReference, exec_err, internal_err};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ops::goal_select::{GoalSelectExec, GoalSelectNode};
use crate::ops::shipped_goal::ShippedGoalNode;
use crate::ops::uni_sample::{UniSampleExec, UniSampleNode};

const BALLISTA: u8 = 0;
const GOAL_SELECT: u8 = 1;
const UNI_SAMPLE: u8 = 2;
const SHIPPED_GOAL: u8 = 3;
/// A table held in memory (loaded metrics, the scoring views gdo keeps as rows):
/// its rows travel with the plan as Arrow IPC, one stream per partition.
const MEM_TABLE: u8 = 4;

fn encode_mem_table(mem: &MemTable, buf: &mut Vec<u8>) -> Result<()> {
    let schema = mem.schema();
    let mut parts = Vec::with_capacity(mem.batches.len());
    for partition in &mem.batches {
        let Ok(batches) = partition.try_read() else {
            return exec_err!("gdo codec: an in-memory table is being written while its plan is sent");
        };
        let mut bytes = Vec::new();
        let mut w = StreamWriter::try_new(&mut bytes, &schema)?;
        for b in batches.iter() {
            w.write(b)?;
        }
        w.finish()?;
        drop(w);
        parts.push(bytes);
    }
    // Partition count, then each partition's length and bytes.
    buf.extend_from_slice(&(parts.len() as u64).to_le_bytes());
    for p in parts {
        buf.extend_from_slice(&(p.len() as u64).to_le_bytes());
        buf.extend_from_slice(&p);
    }
    Ok(())
}

fn decode_mem_table(mut bytes: &[u8], schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if bytes.len() < n {
            return exec_err!("gdo codec: an in-memory table's bytes end early");
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    let word = |bytes: &mut &[u8]| -> Result<usize> {
        Ok(u64::from_le_bytes(take(bytes, 8)?.try_into().expect("8 bytes")) as usize)
    };
    let count = word(&mut bytes)?;
    let mut partitions = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = word(&mut bytes)?;
        let reader = StreamReader::try_new(take(&mut bytes, len)?, None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<_>, _>>()?);
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

fn to_json(buf: &mut Vec<u8>, tag: u8, params: &impl Serialize) -> Result<()> {
    buf.push(tag);
    serde_json::to_writer(buf, params).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
}

fn from_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).or_else(|e| exec_err!("gdo codec: the {what} parameters do not decode: {e}"))
}

fn inputs_of<T: Clone>(what: &str, inputs: &[T], n: usize) -> Result<Vec<T>> {
    if inputs.len() != n {
        return internal_err!("gdo codec: {what} takes {n} inputs, got {}", inputs.len());
    }
    Ok(inputs.to_vec())
}

/// The logical codec of gdo's clients and schedulers.
#[derive(Debug, Default)]
pub struct GdoLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for GdoLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        let node: Arc<dyn datafusion::logical_expr::UserDefinedLogicalNode> = match buf.split_first() {
            Some((&GOAL_SELECT, json)) => {
                let i = inputs_of("GoalSelect", inputs, 3)?;
                let [scored, strata, vds3] = <[LogicalPlan; 3]>::try_from(i).expect("three inputs");
                Arc::new(GoalSelectNode::try_new(scored, strata, vds3, from_json("goal_select", json)?)?)
            }
            Some((&UNI_SAMPLE, json)) => {
                let input = inputs_of("UniSample", inputs, 1)?.remove(0);
                Arc::new(UniSampleNode::try_new(input, from_json("uni_sample", json)?)?)
            }
            Some((&SHIPPED_GOAL, _)) => {
                let mut i = inputs_of("ShippedGoalQuery", inputs, 2)?;
                let selection = i.pop().expect("two inputs");
                Arc::new(ShippedGoalNode::new(i.pop().expect("two inputs"), selection))
            }
            Some((&BALLISTA, rest)) => return self.inner.try_decode(rest, inputs, ctx),
            _ => return internal_err!("gdo codec: a logical node with an unknown tag"),
        };
        Ok(Extension { node })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        let any = node.node.as_any();
        if let Some(g) = any.downcast_ref::<GoalSelectNode>() {
            return to_json(buf, GOAL_SELECT, &g.params);
        }
        if let Some(u) = any.downcast_ref::<UniSampleNode>() {
            return to_json(buf, UNI_SAMPLE, &u.params);
        }
        if any.is::<ShippedGoalNode>() {
            buf.push(SHIPPED_GOAL);
            return Ok(());
        }
        buf.push(BALLISTA);
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match buf.split_first() {
            Some((&MEM_TABLE, ipc)) => decode_mem_table(ipc, schema),
            Some((&BALLISTA, rest)) => self.inner.try_decode_table_provider(rest, table_ref, schema, ctx),
            _ => internal_err!("gdo codec: a table with an unknown tag"),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(mem) = node.downcast_ref::<MemTable>() {
            buf.push(MEM_TABLE);
            return encode_mem_table(mem, buf);
        }
        buf.push(BALLISTA);
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// The physical codec of gdo's schedulers and executors.
#[derive(Debug, Default)]
pub struct GdoPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for GdoPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match buf.split_first() {
            Some((&GOAL_SELECT, json)) => Ok(Arc::new(GoalSelectExec::new(
                inputs_of("GoalSelectExec", inputs, 3)?,
                from_json("goal_select", json)?,
            ))),
            Some((&UNI_SAMPLE, json)) => Ok(Arc::new(UniSampleExec::new(
                inputs_of("UniSampleExec", inputs, 1)?.remove(0),
                from_json("uni_sample", json)?,
            ))),
            Some((&BALLISTA, rest)) => self.inner.try_decode(rest, inputs, ctx, converter),
            _ => internal_err!("gdo codec: an operator with an unknown tag"),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(g) = node.downcast_ref::<GoalSelectExec>() {
            return to_json(buf, GOAL_SELECT, &g.params);
        }
        if let Some(u) = node.downcast_ref::<UniSampleExec>() {
            return to_json(buf, UNI_SAMPLE, &u.params);
        }
        buf.push(BALLISTA);
        self.inner.try_encode(node, buf, converter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::prelude::SessionContext;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn in_memory_tables_travel_with_every_partition_and_row() {
        let codec = GdoLogicalCodec::default();
        let (a, b) = (batch(&[1, 2, 3]), batch(&[4]));
        let table = Arc::new(MemTable::try_new(a.schema(), vec![vec![a.clone()], vec![b.clone(), a.clone()]]).unwrap());
        let mut buf = Vec::new();
        codec.try_encode_table_provider(&TableReference::bare("t"), table, &mut buf).unwrap();
        let ctx = SessionContext::new();
        let back =
            codec.try_decode_table_provider(&buf, &TableReference::bare("t"), a.schema(), &ctx.task_ctx()).unwrap();
        let mem = back.downcast_ref::<MemTable>().expect("a MemTable again");
        let parts: Vec<Vec<RecordBatch>> = mem.batches.iter().map(|p| p.try_read().unwrap().clone()).collect();
        assert_eq!(parts, vec![vec![a.clone()], vec![b, a.clone()]]);
        // Cut bytes are an error, not a shorter table.
        let err = codec
            .try_decode_table_provider(&buf[..buf.len() - 3], &TableReference::bare("t"), a.schema(), &ctx.task_ctx())
            .err()
            .expect("truncated");
        assert!(err.to_string().contains("end early") || err.to_string().contains("Arrow"), "{err}");
        assert!(
            codec.try_decode_table_provider(&[9], &TableReference::bare("t"), a.schema(), &ctx.task_ctx()).is_err()
        );
    }

    #[test]
    fn uni_sample_nodes_round_trip_with_their_parameters() {
        let codec = GdoLogicalCodec::default();
        let schema = Schema::new(
            ["pool_index", "qa_uid", "video_uid", "text_hash", "score", "base_score", "vds3", "metric_quality"]
                .iter()
                .map(|n| {
                    let t = match *n {
                        "pool_index" => DataType::Int64,
                        "qa_uid" | "video_uid" | "text_hash" => DataType::Utf8,
                        _ => DataType::Float64,
                    };
                    Field::new(*n, t, true)
                })
                .collect::<Vec<_>>(),
        );
        let input = LogicalPlanBuilder::empty(false).build().unwrap();
        let input = LogicalPlanBuilder::from(input)
            .project(schema.fields().iter().map(|f| {
                datafusion::logical_expr::cast(
                    datafusion::prelude::lit(datafusion::common::ScalarValue::Null),
                    f.data_type().clone(),
                )
                .alias(f.name())
            }))
            .unwrap()
            .build()
            .unwrap();
        let params = crate::ops::uni_sample::UniParams { count: 7, seed: 3, max_qa_per_video: 8, oversample: 1.5 };
        let node = UniSampleNode::try_new(input.clone(), params.clone()).unwrap();
        let ext = Extension { node: Arc::new(node) };
        let mut buf = Vec::new();
        codec.try_encode(&ext, &mut buf).unwrap();
        assert_eq!(buf[0], UNI_SAMPLE);
        let ctx = SessionContext::new();
        let back = codec.try_decode(&buf, &[input], &ctx.task_ctx()).unwrap();
        let uni = back.node.as_any().downcast_ref::<UniSampleNode>().expect("a UniSample node");
        assert_eq!(uni.params, params);
        assert_eq!(back.node.name(), "UniSample");
        // The wrong number of inputs is an error naming the node.
        let err = codec.try_decode(&buf, &[], &ctx.task_ctx()).err().expect("no inputs").to_string();
        assert!(err.contains("UniSample takes 1 inputs"), "{err}");
    }
}
