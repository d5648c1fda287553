// MirrorMaker 2's own client code reading what a replicator wrote on a target cluster:
// RemoteClusterUtils / MirrorClient for checkpoints, upstream clusters and replication hops,
// and MM2's Heartbeat and Checkpoint record classes for the bytes. Compiled and run by the
// mm2 integration test. Prints one line per fact:
//   translate <remote topic> <partition> <offset>
//   heartbeat <source alias> <target alias> <timestamp ms>
//   checkpoint <group> <remote topic> <partition> <upstream> <downstream>
//   upstream <cluster alias> <hops>
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.connect.mirror.Checkpoint;
import org.apache.kafka.connect.mirror.Heartbeat;
import org.apache.kafka.connect.mirror.MirrorClient;
import org.apache.kafka.connect.mirror.RemoteClusterUtils;

public class Mm2ClientCheck {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String sourceAlias = args[1];
        String group = args[2];
        Map<String, Object> props = new HashMap<>();
        props.put("bootstrap.servers", bootstrap);

        Map<TopicPartition, OffsetAndMetadata> translated =
            RemoteClusterUtils.translateOffsets(props, sourceAlias, group, Duration.ofSeconds(30));
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : translated.entrySet()) {
            System.out.println("translate " + e.getKey().topic() + " " + e.getKey().partition()
                + " " + e.getValue().offset());
        }

        try (MirrorClient client = new MirrorClient(props)) {
            for (String cluster : client.upstreamClusters()) {
                System.out.println("upstream " + cluster + " " + client.replicationHops(cluster));
            }
        }

        for (String topic : List.of("heartbeats", sourceAlias + ".checkpoints.internal")) {
            for (ConsumerRecord<byte[], byte[]> record : readAll(bootstrap, topic)) {
                if (topic.equals("heartbeats")) {
                    Heartbeat h = Heartbeat.deserializeRecord(record);
                    System.out.println("heartbeat " + h.sourceClusterAlias() + " "
                        + h.targetClusterAlias() + " " + h.timestamp());
                } else {
                    Checkpoint c = Checkpoint.deserializeRecord(record);
                    System.out.println("checkpoint " + c.consumerGroupId() + " "
                        + c.topicPartition().topic() + " " + c.topicPartition().partition() + " "
                        + c.upstreamOffset() + " " + c.downstreamOffset());
                }
            }
        }
    }

    static List<ConsumerRecord<byte[], byte[]>> readAll(String bootstrap, String topic) {
        Map<String, Object> props = new HashMap<>();
        props.put("bootstrap.servers", bootstrap);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        List<ConsumerRecord<byte[], byte[]>> out = new java.util.ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            long deadline = System.currentTimeMillis() + 30_000;
            while (consumer.position(tp) < end && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    out.add(r);
                }
            }
        }
        return out;
    }
}
