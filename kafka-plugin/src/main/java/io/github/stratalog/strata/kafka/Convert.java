package io.github.stratalog.strata.kafka;

import com.google.protobuf.ByteString;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/** Kafka's types to the service's messages. */
final class Convert {
    private Convert() {
    }

    /** A TopicIdPartition: the topic id as 16 bytes, most significant first, as Kafka writes a Uuid. */
    static io.github.stratalog.strata.kafka.grpc.TopicIdPartition toProto(TopicIdPartition tp) {
        Uuid id = tp.topicId();
        ByteBuffer b = ByteBuffer.allocate(16);
        b.putLong(id.getMostSignificantBits()).putLong(id.getLeastSignificantBits());
        return io.github.stratalog.strata.kafka.grpc.TopicIdPartition.newBuilder()
                .setTopicId(ByteString.copyFrom(b.array()))
                .setTopic(tp.topic() == null ? "" : tp.topic())
                .setPartition(tp.partition())
                .build();
    }

    static List<io.github.stratalog.strata.kafka.grpc.TopicIdPartition> toProto(Collection<TopicIdPartition> tps) {
        List<io.github.stratalog.strata.kafka.grpc.TopicIdPartition> out = new ArrayList<>(tps.size());
        for (TopicIdPartition tp : tps) {
            out.add(toProto(tp));
        }
        return out;
    }

    /** The inverse of toProto, for tests and logs. */
    static TopicIdPartition fromProto(io.github.stratalog.strata.kafka.grpc.TopicIdPartition p) {
        if (p.getTopicId().size() != 16) {
            throw new IllegalArgumentException("topic id of " + p.getTopicId().size() + " bytes, want 16");
        }
        ByteBuffer b = p.getTopicId().asReadOnlyByteBuffer();
        return new TopicIdPartition(new Uuid(b.getLong(), b.getLong()), p.getPartition(), p.getTopic());
    }
}
